//! `CONFIG`: a one-slot array the agent writes and every program reads.

/// What the programs need to know of the agent that loaded them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The cookie of the agent's network namespace. The cgroup socket hooks
    /// act only on sockets of this namespace: a cgroup spans namespaces.
    /// 0 until the agent has written it: then they act on none.
    pub netns_cookie: u64,
    /// The masquerade port range, inclusive, host order; a source port
    /// outside it is always replaced by one inside. It must not overlap
    /// the node's `ip_local_port_range`. 0..0: masquerade off.
    pub snat_port_min: u16,
    pub snat_port_max: u16,
    /// The IPv4 address whose packets every hook records through aya-log
    /// (`weir agent --trace`); `0.0.0.0`: no trace.
    pub trace4: [u8; 4],
}

#[cfg(feature = "user")]
// SAFETY: repr(C), no padding (8 + 2 + 2 + 4 bytes), every bit pattern valid.
unsafe impl aya::Pod for Config {}

/// A socket's view of a translated address, for `recvmsg4` and
/// `getpeername4`: `SOCK_RNAT4` maps (socket cookie, container address,
/// port) back to the address the socket asked for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockRnatKey {
    pub cookie: u64,
    pub ip: [u8; 4],
    pub port: [u8; 2],
    /// Explicit padding, always zero.
    pub pad: [u8; 2],
}

/// See [`SockRnatKey`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockRnatValue {
    pub ip: [u8; 4],
    pub port: [u8; 2],
    /// Explicit padding, always zero.
    pub pad: [u8; 2],
}

/// `SOCK_RNAT6`'s value: the IPv6 address and port a socket of the node
/// asked for (`[::1]:H`), keyed like `SOCK_RNAT4` by the socket and the
/// container's IPv4 address and port it was pointed at (as `::ffff:a.b.c.d`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockRnat6Value {
    pub ip: [u8; 16],
    pub port: [u8; 2],
    /// Explicit padding, always zero.
    pub pad: [u8; 2],
}

#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for SockRnat6Value {}

/// `SOCK_RNAT66`'s key: a node socket (its cookie) pointed at a
/// container's IPv6 address and port, by a publication over IPv6 only
/// (`-p [::1]:H:C`, `-p [::]:H:C`); the value is a [`SockRnat6Value`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockRnat66Key {
    pub cookie: u64,
    pub ip: [u8; 16],
    pub port: [u8; 2],
    /// Explicit padding, always zero.
    pub pad: [u8; 6],
}

#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for SockRnat66Key {}

/// Capacity of `SOCK_RNAT4`.
pub const MAX_SOCK_RNAT: u32 = 65_536;

#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for SockRnatKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for SockRnatValue {}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<Config>(), 16);
        assert_eq!(size_of::<SockRnatKey>(), 16);
        assert_eq!(size_of::<SockRnatValue>(), 8);
        assert_eq!(size_of::<SockRnat6Value>(), 20);
        assert_eq!(size_of::<SockRnat66Key>(), 32);
    }
}
