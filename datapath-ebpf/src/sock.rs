//! cgroup `sock_addr` hooks: the node's own sockets reaching a published
//! port (`127.0.0.1:H`, a node address). `connect4`/`sendmsg4` point the
//! socket at the container itself, so no packet needs translating;
//! `recvmsg4`/`getpeername4` show the socket the address it asked for.
//! The `*6` hooks do the same for IPv6 sockets: `[::1]:H` reaches what
//! `-p H:...` publishes on every address (Docker's `0.0.0.0` and `[::]`),
//! and a v4-mapped `[::ffff:a.b.c.d]:H` what `a.b.c.d:H` reaches; the
//! socket is pointed at the container's IPv4 address, v4-mapped, so a
//! dual-stack socket (the default) speaks IPv4 to it. A publication over
//! IPv6 only (`-p [::1]:H:C`, `[::]:H:C`, `[ADDR]:H:C`) points the socket
//! at the container's IPv6 address, `sendmsg6` too.
//!
//! A cgroup spans network namespaces: every hook first checks that the
//! socket lives in the agent's namespace (`CONFIG.netns_cookie`).

use aya_ebpf::{
    EbpfContext,
    btf_maps::LruHashMap,
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    programs::SockAddrContext,
};
use weir_common::{
    config::{SockRnat6Value, SockRnat66Key, SockRnatKey, SockRnatValue},
    publish::{PublishKey, PublishKey6, PublishTarget, PublishTarget6},
};

use crate::{
    dnat,
    maps::{CONFIG, HOST_ADDRS6, PUBLISH4, PUBLISH6, SOCK_RNAT4, SOCK_RNAT6, SOCK_RNAT66},
    stats,
};

/// cgroup hooks allow the call by returning 1.
pub const ALLOW: i32 = 1;

#[inline(always)]
fn ours(ctx: &SockAddrContext) -> bool {
    let Some(config) = CONFIG.get_ptr(0) else {
        return false;
    };
    // SAFETY: a pointer into an array value; the context is the program's.
    unsafe {
        let cookie = (*config).netns_cookie;
        cookie != 0 && bpf_get_netns_cookie(ctx.as_ptr()) == cookie
    }
}

/// The socket's cookie.
#[inline(always)]
fn cookie(ctx: &SockAddrContext) -> u64 {
    // SAFETY: the context is the program's.
    unsafe { bpf_get_socket_cookie(ctx.as_ptr()) }
}

/// Keeps the way back (`back`: what it asked for) for a socket about to
/// be pointed at a container, under `key` (the socket and where it is
/// pointed), and calls `count` the first time for this socket and target
/// (a flow of the publication's: a socket sending many datagrams counts
/// once). `false` when it cannot be kept: answers would then show the
/// container's address, so the socket is better left as it was.
#[inline(always)]
fn remember<K: Copy, V, const N: usize>(
    ways_back: &LruHashMap<K, V, N>,
    key: K,
    back: V,
    count: impl FnOnce(),
) -> bool {
    let new_flow = ways_back.get_ptr(key).is_none();
    if ways_back.insert(key, back, 0).is_err() {
        return false;
    }
    if new_flow {
        count();
    }
    true
}

/// `connect4` and `sendmsg4`: a socket aimed at a published port is aimed
/// at its container instead, and remembers what it asked for.
#[inline(always)]
pub fn to_published(ctx: &SockAddrContext) -> i32 {
    if !ours(ctx) {
        return ALLOW;
    }
    let sa = ctx.sock_addr;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "`user_port` is a 16-bit port in a 32-bit field of `bpf_sock_addr`"
    )]
    // SAFETY: the context is a valid `bpf_sock_addr` for this run.
    let (ip, port, proto) = unsafe {
        (
            (*sa).user_ip4.to_ne_bytes(),
            ((*sa).user_port as u16).to_ne_bytes(),
            (*sa).protocol,
        )
    };
    let Ok(proto) = u8::try_from(proto) else {
        return ALLOW;
    };
    let Some((published, target)) = dnat::lookup(ip, port, proto, true) else {
        return ALLOW;
    };
    let back = SockRnatValue {
        ip,
        port,
        pad: [0; 2],
    };
    let key = SockRnatKey {
        cookie: cookie(ctx),
        ip: target.ip,
        port: target.port,
        pad: [0; 2],
    };
    if !remember(&SOCK_RNAT4, key, back, || stats::port_flow(&published)) {
        return ALLOW;
    }
    // SAFETY: `user_ip4` and `user_port` are writable in these hooks.
    unsafe {
        (*sa).user_ip4 = u32::from_ne_bytes(target.ip);
        (*sa).user_port = u32::from(u16::from_ne_bytes(target.port));
    }
    ALLOW
}

/// `recvmsg4` and `getpeername4`: a container's address is shown as the
/// published address the socket asked for.
#[inline(always)]
pub fn from_published(ctx: &SockAddrContext) -> i32 {
    if !ours(ctx) {
        return ALLOW;
    }
    let sa = ctx.sock_addr;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "`user_port` is a 16-bit port in a 32-bit field of `bpf_sock_addr`"
    )]
    // SAFETY: the context is a valid `bpf_sock_addr` for this run.
    let key = unsafe {
        SockRnatKey {
            cookie: cookie(ctx),
            ip: (*sa).user_ip4.to_ne_bytes(),
            port: ((*sa).user_port as u16).to_ne_bytes(),
            pad: [0; 2],
        }
    };
    if let Some(back) = SOCK_RNAT4.get_ptr(key) {
        // SAFETY: a pointer into a map value; the fields are writable here.
        unsafe {
            (*sa).user_ip4 = u32::from_ne_bytes((*back).ip);
            (*sa).user_port = u32::from(u16::from_ne_bytes((*back).port));
        }
    }
    ALLOW
}

/// `::1`, as `user_ip6` holds it (network order words).
const LOOPBACK6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// The prefix of a v4-mapped address, `::ffff:0:0/96`.
const MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

#[inline(always)]
fn words_to_bytes(w: [u32; 4]) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (i, word) in w.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    b
}

/// `user_ip6`'s words of address `b`.
#[inline(always)]
fn bytes_to_words(b: [u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
    ]
}

/// The IPv4 address a v4-mapped IPv6 address holds.
#[inline(always)]
fn mapped_v4(a: &[u8; 16]) -> Option<[u8; 4]> {
    (a[..12] == MAPPED).then(|| [a[12], a[13], a[14], a[15]])
}

/// Where an IPv6 socket aimed at a published port goes.
enum Target6 {
    /// The container's IPv4 address, v4-mapped: a publication on IPv4
    /// (`PUBLISH4`), every address's or the mapped address's.
    Mapped(PublishKey, PublishTarget),
    /// The container's IPv6 address (`PUBLISH6`), and the key that
    /// matched (its counters in `PORT_STATS6`).
    Native(PublishTarget6, PublishKey6),
}

/// The publication an IPv6 socket aimed at `ip:port` reaches: at `[::1]`
/// or a node's IPv6 address, one bound to that address, else one on
/// every IPv6 address (`-p [::]:H:C`, and `-p H:C` of a container with an
/// IPv6 address: Docker's `[::]` binding leads to the container's IPv6
/// address), else one on every address (`-p H:C` of a container without
/// IPv6, to its IPv4 address when `mapped_ok`); at a v4-mapped address
/// (when `mapped_ok`) what its IPv4 address does.
#[inline(always)]
fn published6(ip: &[u8; 16], port: [u8; 2], proto: u8, mapped_ok: bool) -> Option<Target6> {
    let every4 = PublishKey {
        host_ip: [0; 4],
        port,
        proto,
        pad: 0,
    };
    if *ip == LOOPBACK6 || HOST_ADDRS6.get_ptr(*ip).is_some() {
        let mut key6 = PublishKey6 {
            host_ip: *ip,
            port,
            proto,
            pad: 0,
        };
        // SAFETY (each `*t`): a pointer into a map value, read at once.
        if let Some(t) = PUBLISH6.get_ptr(key6) {
            return Some(Target6::Native(unsafe { *t }, key6));
        }
        key6.host_ip = [0; 16];
        if let Some(t) = PUBLISH6.get_ptr(key6) {
            return Some(Target6::Native(unsafe { *t }, key6));
        }
        if !mapped_ok {
            return None;
        }
        return PUBLISH4
            .get_ptr(every4)
            .map(|t| Target6::Mapped(every4, unsafe { *t }));
    }
    if !mapped_ok {
        return None;
    }
    dnat::lookup(mapped_v4(ip)?, port, proto, true).map(|(k, t)| Target6::Mapped(k, t))
}

/// `connect6` (`mapped_ok`) and `sendmsg6`: an IPv6 socket aimed at a
/// published port is aimed at its container instead: at its IPv4
/// address, v4-mapped, for a publication on IPv4, at its IPv6 address
/// for one over IPv6 only. (`sendmsg6` cannot do the former: the kernel
/// refuses an unconnected UDP send rewritten to a v4-mapped address,
/// `ENOTSUPP`; such a datagram is left as it is.)
#[inline(always)]
pub fn to_published6(ctx: &SockAddrContext, mapped_ok: bool) -> i32 {
    if !ours(ctx) {
        return ALLOW;
    }
    let sa = ctx.sock_addr;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "`user_port` is a 16-bit port in a 32-bit field of `bpf_sock_addr`"
    )]
    // SAFETY: the context is a valid `bpf_sock_addr` for this run.
    let (ip, port, proto) = unsafe {
        (
            words_to_bytes((*sa).user_ip6),
            ((*sa).user_port as u16).to_ne_bytes(),
            (*sa).protocol,
        )
    };
    let Ok(proto) = u8::try_from(proto) else {
        return ALLOW;
    };
    let Some(target) = published6(&ip, port, proto, mapped_ok) else {
        return ALLOW;
    };
    let back = SockRnat6Value {
        ip,
        port,
        pad: [0; 2],
    };
    let (words, to_port) = match target {
        Target6::Mapped(published, t) => {
            let key = SockRnatKey {
                cookie: cookie(ctx),
                ip: t.ip,
                port: t.port,
                pad: [0; 2],
            };
            if !remember(&SOCK_RNAT6, key, back, || stats::port_flow(&published)) {
                return ALLOW;
            }
            let mapped = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
            ([0, 0, mapped, u32::from_ne_bytes(t.ip)], t.port)
        }
        Target6::Native(t, published) => {
            let key = SockRnat66Key {
                cookie: cookie(ctx),
                ip: t.ip,
                port: t.port,
                pad: [0; 6],
            };
            if !remember(&SOCK_RNAT66, key, back, || stats::port_flow6(&published)) {
                return ALLOW;
            }
            (bytes_to_words(t.ip), t.port)
        }
    };
    // SAFETY: `user_ip6` and `user_port` are writable in these hooks.
    unsafe {
        (*sa).user_ip6 = words;
        (*sa).user_port = u32::from(u16::from_ne_bytes(to_port));
    }
    ALLOW
}

/// `recvmsg6` and `getpeername6`: a container's address (v4-mapped or
/// IPv6) is shown as the published address the socket asked for.
#[inline(always)]
pub fn from_published6(ctx: &SockAddrContext) -> i32 {
    if !ours(ctx) {
        return ALLOW;
    }
    let sa = ctx.sock_addr;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "`user_port` is a 16-bit port in a 32-bit field of `bpf_sock_addr`"
    )]
    // SAFETY: the context is a valid `bpf_sock_addr` for this run.
    let (ip, port) = unsafe {
        (
            words_to_bytes((*sa).user_ip6),
            ((*sa).user_port as u16).to_ne_bytes(),
        )
    };
    let cookie = cookie(ctx);
    let back = match mapped_v4(&ip) {
        Some(v4) => SOCK_RNAT6.get_ptr(SockRnatKey {
            cookie,
            ip: v4,
            port,
            pad: [0; 2],
        }),
        None => SOCK_RNAT66.get_ptr(SockRnat66Key {
            cookie,
            ip,
            port,
            pad: [0; 6],
        }),
    };
    if let Some(back) = back {
        // SAFETY: a pointer into a map value; the fields are writable here.
        unsafe {
            (*sa).user_ip6 = bytes_to_words((*back).ip);
            (*sa).user_port = u32::from(u16::from_ne_bytes((*back).port));
        }
    }
    ALLOW
}
