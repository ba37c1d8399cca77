//! The one path every drop goes through: it counts the packet under its
//! stable reason, tells the agent about it through `EVENTS` (for `weir
//! monitor`; lost, never waited for, when the ring is full, and the loss
//! counted in `HOOK_STATS`' [`Hook::EVENTS_LOST`] slot), and returns
//! the hook's drop verdict. Nothing is logged per packet.

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes},
    programs::TcContext,
};
use weir_common::{
    drop::DropReason,
    event::{DropEvent, DropEvent6},
    publish::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
    stats::Hook,
};

use crate::{
    maps::{DROP_STATS, EVENTS, HOOK_STATS},
    parse::{ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, XdpFrame, ptr_at},
    stats,
    verdict::TC_DROP,
};

/// Records go in without waking the agent, which drains the ring on a
/// timer: a wake-up per drop would make a flood of drops a flood of
/// wake-ups.
const NO_WAKEUP: u64 = BPF_RB_NO_WAKEUP as u64;

/// Drops a packet at a tc hook.
#[inline(always)]
pub fn tc(ctx: &TcContext, hook: Hook, reason: DropReason) -> i32 {
    stats::add(&DROP_STATS, reason.number(), ctx.len());
    let e = event(ctx, hook, reason);
    if e.ethertype == ETH_P_IPV6 {
        output6(ctx, &e);
    } else if EVENTS.output(e, NO_WAKEUP).is_err() {
        lost();
    }
    TC_DROP
}

/// An IPv6 packet's event: `e` and the addresses, loaded straight into
/// the ring's record (no 80-byte copy on a stack that the IPv4 paths
/// already fill).
#[inline(always)]
fn output6(ctx: &TcContext, e: &DropEvent) {
    let Some(mut entry) = EVENTS.reserve_untyped::<DropEvent6>(0) else {
        lost();
        return;
    };
    let p = entry.as_mut_ptr();
    // SAFETY: `p` is the reserved record, written whole before it is
    // submitted; the loads write 16 bytes each into its address fields
    // (zeroed by the helper when the packet is shorter).
    unsafe {
        (*p).event = *e;
        let skb = ctx.skb.skb.cast();
        bpf_skb_load_bytes(skb, 14 + 8, (&raw mut (*p).saddr).cast(), 16);
        bpf_skb_load_bytes(skb, 14 + 24, (&raw mut (*p).daddr).cast(), 16);
    }
    entry.submit(NO_WAKEUP);
}

/// Drops a frame at XDP: counted and told like a tc drop (the headers read
/// directly, an XDP frame's first buffer holding them).
#[inline(always)]
pub fn xdp(ctx: &XdpFrame, hook: Hook, reason: DropReason) -> u32 {
    let len = ctx.len();
    stats::add(&DROP_STATS, reason.number(), len);
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a hook's index is below `Hook::MAP_SIZE`, 8"
    )]
    let mut e = DropEvent {
        // SAFETY: a helper without arguments.
        time_ns: unsafe { bpf_ktime_get_ns() },
        reason: reason.number(),
        ifindex: u32::try_from(ctx.ctx.ingress_ifindex()).unwrap_or(0),
        len,
        hook: hook.index() as u8,
        ..DropEvent::default()
    };
    if let Some(eth) = ptr_at::<[u8; 14]>(ctx, 0) {
        // SAFETY: `ptr_at` checked the bytes are in the frame.
        let eth = unsafe { *eth };
        e.smac = [eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]];
        e.ethertype = [eth[12], eth[13]];
    }
    if e.ethertype == ETH_P_IP
        && let Some(ip) = ptr_at::<[u8; 20]>(ctx, 14)
    {
        // SAFETY: as above.
        let ip = unsafe { *ip };
        e.proto = ip[9];
        e.saddr = [ip[12], ip[13], ip[14], ip[15]];
        e.daddr = [ip[16], ip[17], ip[18], ip[19]];
        #[expect(
            clippy::verbose_bit_mask,
            reason = "a mask of the fragment offset's top 5 bits, as in the header, not a count"
        )]
        let first_fragment = ip[6] & 0x1f == 0 && ip[7] == 0;
        if first_fragment
            && ip[0] == 0x45
            && let Some(l4) = ptr_at::<[u8; 8]>(ctx, 34)
        {
            // SAFETY: as above.
            set_ports(&mut e, unsafe { *l4 });
        }
    }
    if EVENTS.output(e, NO_WAKEUP).is_err() {
        lost();
    }
    aya_ebpf::bindings::xdp_action::XDP_DROP
}

/// Counts a drop event the full ring had no room for (never waited for).
#[inline(always)]
fn lost() {
    stats::add(&HOOK_STATS, Hook::EVENTS_LOST, 0);
}

/// What `weir monitor` shows of a dropped packet. The headers are read with
/// `bpf_skb_load_bytes`, which works wherever they lie in the skb and
/// whatever made the packet fail: a short one simply leaves fields at 0.
#[inline(always)]
fn event(ctx: &TcContext, hook: Hook, reason: DropReason) -> DropEvent {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a hook's index is below `Hook::MAP_SIZE`, 8"
    )]
    let mut e = DropEvent {
        // SAFETY: a helper without arguments.
        time_ns: unsafe { bpf_ktime_get_ns() },
        reason: reason.number(),
        // SAFETY: the skb pointer is the program's context.
        ifindex: unsafe { (*ctx.skb.skb).ifindex },
        len: ctx.len(),
        hook: hook.index() as u8,
        ..DropEvent::default()
    };
    let Ok(eth) = ctx.load::<[u8; 14]>(0) else {
        return e;
    };
    e.smac = [eth[6], eth[7], eth[8], eth[9], eth[10], eth[11]];
    e.ethertype = [eth[12], eth[13]];
    if e.ethertype == ETH_P_ARP {
        if let Ok(arp) = ctx.load::<[u8; 28]>(14) {
            e.saddr = [arp[14], arp[15], arp[16], arp[17]];
            e.daddr = [arp[24], arp[25], arp[26], arp[27]];
        }
        return e;
    }
    if e.ethertype == ETH_P_IPV6 {
        // The next header and, right after the fixed header, the ports.
        if let Ok(next) = ctx.load::<u8>(14 + 6) {
            e.proto = next;
            if let Ok(l4) = ctx.load::<[u8; 8]>(14 + 40) {
                set_ports(&mut e, l4);
            }
        }
        return e;
    }
    if e.ethertype != ETH_P_IP {
        return e;
    }
    let Ok(ip) = ctx.load::<[u8; 20]>(14) else {
        return e;
    };
    e.proto = ip[9];
    e.saddr = [ip[12], ip[13], ip[14], ip[15]];
    e.daddr = [ip[16], ip[17], ip[18], ip[19]];
    #[expect(
        clippy::verbose_bit_mask,
        reason = "a mask of the fragment offset's top 5 bits, as in the header, not a count"
    )]
    let first_fragment = ip[6] & 0x1f == 0 && ip[7] == 0;
    let l4_off = 14 + usize::from(ip[0] & 0x0f) * 4;
    if first_fragment && let Ok(l4) = ctx.load::<[u8; 8]>(l4_off) {
        set_ports(&mut e, l4);
    }
    e
}

/// The event's ports from the first 8 bytes of its L4 header: TCP's and
/// UDP's, ICMP's and `ICMPv6`'s echo identifier.
#[inline(always)]
fn set_ports(e: &mut DropEvent, l4: [u8; 8]) {
    match e.proto {
        PROTO_TCP | PROTO_UDP => {
            e.sport = [l4[0], l4[1]];
            e.dport = [l4[2], l4[3]];
        }
        PROTO_ICMP | PROTO_ICMPV6 => e.sport = [l4[4], l4[5]],
        _ => {}
    }
}
