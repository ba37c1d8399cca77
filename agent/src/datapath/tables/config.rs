//! `CONFIG`: the programs' settings (`weir_common::config`).

use std::{net::Ipv4Addr, os::fd::AsRawFd};

use aya::maps::{Array, MapData};
use weir_common::config::Config;

use super::super::{Datapath, DatapathError, map_err, map_names};

impl Datapath {
    /// Tells the programs which network namespace is the agent's (the one
    /// the calling thread is in) and the masquerade port range.
    pub fn configure(&mut self, snat_ports: (u16, u16)) -> Result<(), DatapathError> {
        let config = Config {
            netns_cookie: netns_cookie()?,
            snat_port_min: snat_ports.0,
            snat_port_max: snat_ports.1,
            trace4: [0; 4],
        };
        self.config_array()?
            .set(0, config, 0)
            .map_err(|source| map_err(map_names::CONFIG, source))
    }

    /// Turns the programs' trace (`CONFIG.trace4`) on for `addr`'s
    /// packets, or off.
    pub fn set_trace(&mut self, addr: Option<Ipv4Addr>) -> Result<(), DatapathError> {
        let mut array = self.config_array()?;
        let mut config = array
            .get(&0, 0)
            .map_err(|source| map_err(map_names::CONFIG, source))?;
        config.trace4 = addr.unwrap_or(Ipv4Addr::UNSPECIFIED).octets();
        array
            .set(0, config, 0)
            .map_err(|source| map_err(map_names::CONFIG, source))
    }

    fn config_array(&mut self) -> Result<Array<&mut MapData, Config>, DatapathError> {
        self.ebpf
            .map_mut(map_names::CONFIG)
            .ok_or(DatapathError::MissingMap(map_names::CONFIG))?
            .try_into()
            .map_err(|source| map_err(map_names::CONFIG, source))
    }
}

/// The cookie of the calling thread's network namespace.
fn netns_cookie() -> Result<u64, DatapathError> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")
        .or_else(|_| std::net::UdpSocket::bind("0.0.0.0:0"))
        .map_err(DatapathError::NetnsCookie)?;
    let mut cookie: u64 = 0;
    let mut len: libc::socklen_t = 8; // size_of::<u64>()
    // SAFETY: a valid socket and a buffer of the length we pass.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(DatapathError::NetnsCookie(std::io::Error::last_os_error()));
    }
    Ok(cookie)
}
