//! A device feature set the way `ethtool -K` sets it (the `SIOCETHTOOL`
//! ioctl; rtnetlink has no verb for features), in the network namespace
//! of the calling thread: transmit checksum offload off, so a device
//! hands frames out with their checksums complete, as a wire carries them
//! (the test bed's outside hosts use it to stand in for one).

use std::{io, os::fd::AsRawFd as _, os::fd::FromRawFd as _, os::fd::OwnedFd};

const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// A feature with its legacy `ETHTOOL_S*` command.
#[derive(Clone, Copy, Debug)]
pub enum Feature {
    TxChecksum,
}

impl Feature {
    const fn set_cmd(self) -> u32 {
        match self {
            Feature::TxChecksum => 0x17, // ETHTOOL_STXCSUM
        }
    }
}

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with its `ifr_data` member: 16 bytes of name, then the
/// 24-byte union whose first word is the pointer.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    pad: [u8; 16],
}

/// Turns `feature` on or off on device `name`.
pub fn set(name: &str, feature: Feature, on: bool) -> io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a device name"),
        ));
    }
    // SAFETY: a plain socket(2); the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut value = EthtoolValue {
        cmd: feature.set_cmd(),
        data: u32::from(on),
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &raw mut value,
        pad: [0; 16],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: `req` and the value it points to live across the call, laid
    // out as the kernel reads them.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &raw mut req) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("setting {feature:?} on {name}: {e}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_is_the_kernels_size() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
    }

    #[test]
    fn bad_names_are_refused_before_any_call() {
        assert!(set("", Feature::TxChecksum, true).is_err());
        assert!(set("a-name-far-too-long", Feature::TxChecksum, true).is_err());
    }
}
