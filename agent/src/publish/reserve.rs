//! Port reservations: for every published port the agent holds a socket
//! bound (never listening) to the host address and port, as Docker does.
//! The kernel then refuses the port to any other program and never hands
//! it out as an ephemeral port, and a port some program already holds is
//! found at publish time, with the kernel's own answer. An IPv6 address
//! is held by an IPv6-only socket (`IPV6_V6ONLY`), so `[::]:H` leaves
//! `0.0.0.0:H` to others as Docker's does.

use std::{
    collections::HashMap,
    io,
    net::{IpAddr, SocketAddr},
};

use socket2::{Domain, Protocol, Socket, Type};

use super::Proto;

/// Why a port could not be reserved.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError {
    #[error("{}/{proto} is in use by a program on the node", SocketAddr::new(*.ip, *.port))]
    InUse { ip: IpAddr, port: u16, proto: Proto },
    #[error("{ip} is not an address of this node")]
    NotLocal { ip: IpAddr },
    #[error("{proto} ports are not supported (TCP and UDP are)")]
    Unsupported { proto: Proto },
    #[error("reserving {}/{proto}", SocketAddr::new(*.ip, *.port))]
    Io {
        ip: IpAddr,
        port: u16,
        proto: Proto,
        #[source]
        source: io::Error,
    },
}

/// The sockets that hold published ports, by (protocol, address, port).
#[derive(Default)]
pub struct Reservations {
    held: HashMap<(Proto, IpAddr, u16), Socket>,
}

impl Reservations {
    /// Binds `ip:port` for `proto` and holds it; port 0 lets the kernel
    /// pick a free one (from `ip_local_port_range`, as Docker's pick does).
    /// Returns the port held.
    pub fn reserve(&mut self, proto: Proto, ip: IpAddr, port: u16) -> Result<u16, ReserveError> {
        let (ty, protocol) = match proto {
            Proto::Tcp => (Type::STREAM, Protocol::TCP),
            Proto::Udp => (Type::DGRAM, Protocol::UDP),
            Proto::Sctp => return Err(ReserveError::Unsupported { proto }),
        };
        let io_err = |source: io::Error| match source.raw_os_error() {
            Some(libc::EADDRINUSE) => ReserveError::InUse { ip, port, proto },
            Some(libc::EADDRNOTAVAIL) => ReserveError::NotLocal { ip },
            _ => ReserveError::Io {
                ip,
                port,
                proto,
                source,
            },
        };
        let socket = Socket::new(
            Domain::for_address(SocketAddr::new(ip, port)),
            ty,
            Some(protocol),
        )
        .map_err(io_err)?;
        socket.set_cloexec(true).map_err(io_err)?;
        if ip.is_ipv6() {
            socket.set_only_v6(true).map_err(io_err)?;
        }
        socket
            .bind(&SocketAddr::new(ip, port).into())
            .map_err(io_err)?;
        let port = socket
            .local_addr()
            .map_err(io_err)?
            .as_socket()
            .map_or(port, |a| a.port());
        self.held.insert((proto, ip, port), socket);
        Ok(port)
    }

    /// Lets the port go.
    pub fn release(&mut self, proto: Proto, ip: IpAddr, port: u16) {
        self.held.remove(&(proto, ip, port));
    }

    /// Whether the agent holds this port.
    #[must_use]
    pub fn holds(&self, proto: Proto, ip: IpAddr, port: u16) -> bool {
        self.held.contains_key(&(proto, ip, port))
    }
}
