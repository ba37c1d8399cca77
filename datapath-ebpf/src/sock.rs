//! cgroup `sock_addr` hooks: the node's own sockets reaching a published
//! port (`127.0.0.1:H`, a node address). `connect4`/`sendmsg4` point the
//! socket at the container itself, so no packet needs translating;
//! `recvmsg4`/`getpeername4` show the socket the address it asked for.
//! The `*6` hooks do the same for IPv6 sockets: `[::1]:H` reaches what
//! `-p H:...` publishes on every address (Docker's `0.0.0.0` and `[::]`),
//! and a v4-mapped `[::ffff:a.b.c.d]:H` what `a.b.c.d:H` reaches; the
//! socket is pointed at the container's IPv4 address, v4-mapped, so a
//! dual-stack socket (the default) speaks IPv4 to it.
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
    config::{SockRnat6Value, SockRnatKey, SockRnatValue},
    publish::{PublishKey, PublishTarget},
};

use crate::{
    dnat,
    maps::{CONFIG, SOCK_RNAT4, SOCK_RNAT6},
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

/// Keeps the way back for a socket about to be pointed at `target` (`back`:
/// what it asked for, under the socket and `target`), and counts the
/// socket's first packet or connect as a flow of `published` (a socket
/// sending many datagrams counts once). `false` when it cannot be kept:
/// answers would then show the container's address, so the socket is
/// better left as it was.
#[inline(always)]
fn remember<V, const N: usize>(
    ctx: &SockAddrContext,
    ways_back: &LruHashMap<SockRnatKey, V, N>,
    published: &PublishKey,
    target: &PublishTarget,
    back: V,
) -> bool {
    // SAFETY: the context is the program's.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let key = SockRnatKey {
        cookie,
        ip: target.ip,
        port: target.port,
        pad: [0; 2],
    };
    let new_flow = ways_back.get_ptr(key).is_none();
    if ways_back.insert(key, back, 0).is_err() {
        return false;
    }
    if new_flow {
        stats::port_flow(published);
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
    if !remember(ctx, &SOCK_RNAT4, &published, &target, back) {
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
    // SAFETY: the context is the program's.
    let key = unsafe {
        SockRnatKey {
            cookie: bpf_get_socket_cookie(ctx.as_ptr()),
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

/// The IPv4 address a v4-mapped IPv6 address holds.
#[inline(always)]
fn mapped_v4(a: &[u8; 16]) -> Option<[u8; 4]> {
    (a[..12] == MAPPED).then(|| [a[12], a[13], a[14], a[15]])
}

/// The publication an IPv6 socket aimed at `ip:port` reaches: `[::1]` and
/// the node's IPv6 addresses the ones on every address (Docker's `[::]`),
/// a v4-mapped address what its IPv4 one does.
#[inline(always)]
fn published6(ip: &[u8; 16], port: [u8; 2], proto: u8) -> Option<(PublishKey, PublishTarget)> {
    if *ip == LOOPBACK6 || crate::maps::HOST_ADDRS6.get_ptr(*ip).is_some() {
        // SAFETY: a pointer into a map value, read at once.
        let key = PublishKey {
            host_ip: [0; 4],
            port,
            proto,
            pad: 0,
        };
        return crate::maps::PUBLISH4
            .get_ptr(key)
            .map(|t| (key, unsafe { *t }));
    }
    dnat::lookup(mapped_v4(ip)?, port, proto, true)
}

/// `connect6`: an IPv6 socket aimed at a published port is aimed at its
/// container's IPv4 address (v4-mapped) instead. (`sendmsg6` cannot do
/// the same: the kernel refuses an unconnected UDP send rewritten to a
/// v4-mapped address, `ENOTSUPP`; such a datagram is left as it is.)
#[inline(always)]
pub fn to_published6(ctx: &SockAddrContext) -> i32 {
    if !ours(ctx) {
        return ALLOW;
    }
    let sa = ctx.sock_addr;
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
    let Some((published, target)) = published6(&ip, port, proto) else {
        return ALLOW;
    };
    let back = SockRnat6Value {
        ip,
        port,
        pad: [0; 2],
    };
    if !remember(ctx, &SOCK_RNAT6, &published, &target, back) {
        return ALLOW;
    }
    let t = target.ip;
    // SAFETY: `user_ip6` and `user_port` are writable in these hooks.
    unsafe {
        (*sa).user_ip6 = [
            0,
            0,
            u32::from_ne_bytes([0, 0, 0xff, 0xff]),
            u32::from_ne_bytes(t),
        ];
        (*sa).user_port = u32::from(u16::from_ne_bytes(target.port));
    }
    ALLOW
}

/// `recvmsg6` and `getpeername6`: a container's v4-mapped address is shown
/// as the published address the socket asked for.
#[inline(always)]
pub fn from_published6(ctx: &SockAddrContext) -> i32 {
    if !ours(ctx) {
        return ALLOW;
    }
    let sa = ctx.sock_addr;
    // SAFETY: the context is a valid `bpf_sock_addr` for this run.
    let (ip, port) = unsafe {
        (
            words_to_bytes((*sa).user_ip6),
            ((*sa).user_port as u16).to_ne_bytes(),
        )
    };
    let Some(v4) = mapped_v4(&ip) else {
        return ALLOW;
    };
    // SAFETY: the context is the program's.
    let key = SockRnatKey {
        cookie: unsafe { bpf_get_socket_cookie(ctx.as_ptr()) },
        ip: v4,
        port,
        pad: [0; 2],
    };
    if let Some(back) = SOCK_RNAT6.get_ptr(key) {
        // SAFETY: a pointer into a map value; the fields are writable here.
        unsafe {
            let b = (*back).ip;
            (*sa).user_ip6 = [
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
                u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
                u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
            ];
            (*sa).user_port = u32::from(u16::from_ne_bytes((*back).port));
        }
    }
    ALLOW
}
