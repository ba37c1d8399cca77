//! The opt-in trace of one IPv4 address's packets (`weir agent --trace
//! ADDR`, which writes it to `CONFIG.trace4`): each hook records such a
//! packet, as it found it and as it leaves, with its verdict, through
//! aya-log's ring (`AYA_LOGS`), which the agent reads and shows as `weir
//! monitor` shows drops. Off (`0.0.0.0`, the default) a packet costs one
//! `CONFIG` read at its hook's entry and one at its exit.
//!
//! The tc hooks' own stacks leave no room for a record (`tc_from_container`
//! uses 504 of the verifier's 512 bytes, a record about 200), so a tc hook
//! keeps the packet's first tuple in the skb's control buffer and, as the
//! packet leaves, tail-calls `tc_trace` (a program of its own, with its own
//! stack), which writes the record and returns the hook's verdict. XDP's
//! stack has the room: it records in line.
//!
//! A record is one line of numbers the agent parses (`weir::trace`):
//! hook, verdict, interface, protocol, length, then source, source port,
//! destination, destination port as found and as left. Ports are those of
//! a TCP or UDP header right after a 20-byte IP header (0 otherwise).

use aya_ebpf::programs::TcContext;
use aya_log_ebpf::info;
use weir_common::{
    publish::{PROTO_TCP, PROTO_UDP},
    stats::{Hook, TAIL_TRACE},
};

use crate::{
    maps::{CONFIG, TAIL_CALLS},
    parse::{ETH_P_IP, Packet, XdpFrame, ptr_at},
    verdict::TC_PASS,
};

/// The Ethernet, IPv4 and port bytes a record reads.
const HEAD: usize = 38;
type Head = [u8; HEAD];

/// `cb[0]` of a traced packet: this, or-ed with its hook's index.
const TRACED: u32 = 0x7472_6300;

/// The traced address, as the packet has it (a `u32` of its bytes), if
/// the trace is on.
#[inline(always)]
fn address() -> Option<u32> {
    let a = CONFIG.get(0)?.trace4;
    (a != [0; 4]).then(|| u32::from_ne_bytes(a))
}

/// At a tc hook's entry, with the trace on: a packet from or to its
/// address is marked in `cb[0]`, its tuple kept in `cb[2..5]` for the
/// record; any other has `cb[0]` cleared.
#[inline(always)]
pub fn tc_in(ctx: &mut TcContext, hook: Hook) {
    let Some(want) = address() else {
        return;
    };
    let found = match ptr_at::<Head>(ctx, 0) {
        // SAFETY: `ptr_at` checked the bytes are in the packet.
        Some(h) => unsafe { tuple(&*h) }.filter(|t| t.0 == want || t.1 == want),
        None => None,
    };
    // Stores one by one (volatile): merged into one store at a computed
    // offset they would be refused (the verifier wants the context's
    // offsets constant).
    if let Some((src, dst, ports)) = found {
        set_cb(ctx, 2, src);
        set_cb(ctx, 3, dst);
        set_cb(ctx, 4, ports);
    }
    set_cb(
        ctx,
        0,
        if found.is_some() {
            TRACED | hook.index()
        } else {
            0
        },
    );
}

#[inline(always)]
fn set_cb(ctx: &mut TcContext, i: usize, value: u32) {
    // SAFETY: one of the skb's five `cb` words, which tc programs may write.
    unsafe { core::ptr::write_volatile(&raw mut (*ctx.skb.skb).cb[i], value) };
}

/// At a tc hook's exit: a traced packet goes to `tc_trace` with its
/// verdict; the rest (or a failed tail call) leave with `verdict`.
#[inline(always)]
pub fn tc_out(ctx: &mut TcContext, verdict: i32) -> i32 {
    // The trace asked again, not a flag kept from the entry: with the
    // trace off `tc_in` leaves `cb` alone, and whatever it holds is not
    // ours. (A flag kept across the hook's work would take a stack slot
    // `tc_from_container` has no room for.)
    if address().is_some() && ctx.cb()[0] & !0xff == TRACED {
        set_cb(ctx, 1, verdict.cast_unsigned());
        // SAFETY: a tail call with the program's own context; it returns
        // only when it failed.
        unsafe { TAIL_CALLS.tail_call(ctx, TAIL_TRACE) };
    }
    verdict
}

/// `tc_trace`: records a tc hook's traced packet and returns the verdict
/// the hook gave it.
#[inline(always)]
pub fn tail(ctx: &mut TcContext) -> i32 {
    let cb = ctx.cb();
    let (mark, verdict, first) = (cb[0], cb[1].cast_signed(), (cb[2], cb[3], cb[4]));
    if mark & !0xff != TRACED {
        return TC_PASS;
    }
    set_cb(ctx, 0, 0);
    // SAFETY: the program's own skb.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    if let Ok(h) = ctx.load::<Head>(0) {
        record(&h, mark & 0xff, verdict, ifindex, ctx.len(), first);
    }
    verdict
}

/// `run`'s verdict on an XDP frame, recorded when it is from or to the
/// traced address.
#[inline(always)]
pub fn xdp(frame: &XdpFrame, run: impl FnOnce() -> u32) -> u32 {
    let first = match address() {
        Some(want) => xdp_first(frame, want),
        None => None,
    };
    let verdict = run();
    if let Some(first) = first {
        xdp_record(frame, verdict, first);
    }
    verdict
}

#[inline(always)]
fn xdp_first(frame: &XdpFrame, want: u32) -> Option<(u32, u32, u32)> {
    let h = ptr_at::<Head>(frame, 0)?;
    // SAFETY: `ptr_at` checked the bytes are in the frame.
    unsafe { tuple(&*h) }.filter(|t| t.0 == want || t.1 == want)
}

#[inline(always)]
fn xdp_record(frame: &XdpFrame, verdict: u32, first: (u32, u32, u32)) {
    if let Some(h) = ptr_at::<Head>(frame, 0) {
        let ifindex = u32::try_from(frame.ctx.ingress_ifindex()).unwrap_or(0);
        let len = u32::try_from(frame.frame_len()).unwrap_or(u32::MAX);
        // SAFETY: `ptr_at` checked the bytes are in the frame.
        let h = unsafe { *h };
        record(
            &h,
            Hook::XdpFromUplink.index(),
            verdict.cast_signed(),
            ifindex,
            len,
            first,
        );
    }
}

/// An IPv4 packet's source, destination (as `u32`s of their bytes) and
/// ports (source in the high half, host order).
#[inline(always)]
fn tuple(h: &Head) -> Option<(u32, u32, u32)> {
    if [h[12], h[13]] != ETH_P_IP {
        return None;
    }
    let src = u32::from_ne_bytes([h[26], h[27], h[28], h[29]]);
    let dst = u32::from_ne_bytes([h[30], h[31], h[32], h[33]]);
    let proto = h[23];
    let ports = if h[14] == 0x45 && (proto == PROTO_TCP || proto == PROTO_UDP) {
        u32::from_be_bytes([h[34], h[35], h[36], h[37]])
    } else {
        0
    };
    Some((src, dst, ports))
}

#[inline(always)]
fn record(h: &Head, hook: u32, verdict: i32, ifindex: u32, len: u32, first: (u32, u32, u32)) {
    let (src, dst, ports) = tuple(h).unwrap_or((0, 0, 0));
    let proto = h[23];
    // No context is needed to write a record: the macro reserves it in
    // `AYA_LOGS` itself.
    info!(
        &(),
        "{} {} {} {} {} {:i} {} {:i} {} {:i} {} {:i} {}",
        hook,
        verdict,
        ifindex,
        proto,
        len,
        first.0.to_ne_bytes(),
        first.2 >> 16,
        first.1.to_ne_bytes(),
        first.2 & 0xffff,
        src.to_ne_bytes(),
        ports >> 16,
        dst.to_ne_bytes(),
        ports & 0xffff
    );
}
