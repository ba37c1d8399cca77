//! cgroup `sock_addr` hooks: the node's own sockets reaching a published
//! port (`127.0.0.1:H`, a node address). `connect4`/`sendmsg4` point the
//! socket at the container itself, so no packet needs translating;
//! `recvmsg4`/`getpeername4` show the socket the address it asked for.
//!
//! A cgroup spans network namespaces: every hook first checks that the
//! socket lives in the agent's namespace (`CONFIG.netns_cookie`).

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    programs::SockAddrContext,
};
use weir_common::config::{SockRnatKey, SockRnatValue};

use crate::{
    dnat,
    maps::{CONFIG, SOCK_RNAT4},
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
    // SAFETY: the context is the program's.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let key = SockRnatKey {
        cookie,
        ip: target.ip,
        port: target.port,
        pad: [0; 2],
    };
    let back = SockRnatValue {
        ip,
        port,
        pad: [0; 2],
    };
    // A socket's first packet or connect to the port is a flow of it (a
    // socket sending many datagrams counts once).
    let new_flow = SOCK_RNAT4.get_ptr(key).is_none();
    // Without the way back, answers would show the container's address:
    // better to leave the socket as it was.
    if SOCK_RNAT4.insert(key, back, 0).is_err() {
        return ALLOW;
    }
    if new_flow {
        stats::port_flow(&published);
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
