//! `ICMPv6` errors about tracked flows, translated as the flows are, with
//! the packet they quote.

use aya_ebpf::{bindings::BPF_F_PSEUDO_HDR, programs::TcContext};
use network_types::ip::Ipv6Hdr;
use weir_common::{
    ct6::CtKey6,
    drop::DropReason,
    publish::{PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
};

use super::{DST_OFF, ICMPV6_ECHO_REQUEST, L4_OFF, SRC_OFF, address};
use crate::{
    maps::{CT6, SCRATCH6},
    parse::{IP_OFF, ptr_at},
    v6,
};

/// The `ICMPv6` errors: destination unreachable (1), packet too big (2),
/// time exceeded (3), parameter problem (4).
const ICMPV6_ERROR_LAST: u8 = 4;
/// Where an error quotes the packet it is about, its addresses and its
/// L4 header.
const QUOTE_OFF: usize = L4_OFF + 8;
const QUOTE_SRC: usize = QUOTE_OFF + 8;
const QUOTE_DST: usize = QUOTE_OFF + 24;
const QUOTE_L4: usize = QUOTE_OFF + 40;
const ICMPV6_CSUM: usize = L4_OFF + 2;

/// An `ICMPv6` error about a tracked flow, translated as the flow is.
/// Inbound (`tc_from_uplink`): an error about a packet the flow sent out
/// (a Packet Too Big above all) gets the container's address as its
/// destination and as the quoted packet's source, and its port in the
/// quote; anything else that is no flow meets [`v6::unsolicited`].
/// Outbound (`tc_to_uplink`): a container's error about a packet it got
/// through a translated flow gets the node's address and port the same
/// way. The `ICMPv6` checksum follows every change (the outer address as
/// the pseudo-header's); the quoted L4 checksum is left as it was, as for
/// IPv4 (receivers do not check it). The quote's tuple is looked up as
/// the flow's next packet the other way would be: the reverse of it.
#[inline(never)]
pub(super) fn error(ctx: &TcContext, inbound: bool) -> Result<(), DropReason> {
    let ip: *const Ipv6Hdr = ptr_at(ctx, IP_OFF).ok_or(DropReason::Malformed)?;
    let s = SCRATCH6.get_ptr_mut(0).ok_or(DropReason::CtInsertFailed)?;
    // SAFETY: `ptr_at` checked the header and the quote are in the
    // packet; the slot is ours for this program run. Packet bytes are
    // copied into the slot before any helper changes the packet.
    unsafe {
        let k = &raw mut (*s).reply_key;
        let (port_off, found) = match quoted(ctx, ip, k, inbound) {
            Some(port_off) => (port_off, CT6.get_ptr(&(*s).reply_key)),
            None => (0, None),
        };
        let Some(e) = found else {
            if inbound {
                v6::unsolicited(&(*ip).src_addr, &(*ip).dst_addr, false)?;
            }
            return Ok(());
        };
        // The error must come to (or from) the end of the flow it quotes.
        let (outer_off, quote_off, outer, old) = if inbound {
            (*s).nat_ip = (*e).nat_daddr;
            (*s).ports = u32::from(u16::from_ne_bytes((*e).nat_dport));
            (DST_OFF, QUOTE_SRC, &(*ip).dst_addr, &(*k).daddr)
        } else {
            (*s).nat_ip = (*e).nat_saddr;
            (*s).ports = u32::from(u16::from_ne_bytes((*e).nat_sport));
            (SRC_OFF, QUOTE_DST, &(*ip).src_addr, &(*k).saddr)
        };
        if *outer != *old {
            return Ok(());
        }
        let new = &(*s).nat_ip;
        let old_port: *const [u8; 2] = ptr_at(ctx, port_off).ok_or(DropReason::Malformed)?;
        let old_port = u16::from_ne_bytes(*old_port);
        #[expect(
            clippy::cast_possible_truncation,
            reason = "`ports` holds the 16-bit port set just above"
        )]
        let new_port = (*s).ports as u16;
        if *old != *new {
            let pseudo = u64::from(BPF_F_PSEUDO_HDR);
            address(ctx, ICMPV6_CSUM, pseudo, outer_off, old, new)?;
            address(ctx, ICMPV6_CSUM, 0, quote_off, old, new)?;
        }
        if old_port != new_port {
            ctx.l4_csum_replace(ICMPV6_CSUM, u64::from(old_port), u64::from(new_port), 2)
                .map_err(|_| DropReason::RewriteFailed)?;
            ctx.store(port_off, &new_port.to_ne_bytes(), 0)
                .map_err(|_| DropReason::RewriteFailed)?;
        }
    }
    Ok(())
}

/// The tuple an `ICMPv6` error quotes, reversed into `k`, and where the
/// quote's port to translate lies (the source's inbound, the
/// destination's outbound; an echo's identifier either way). `None` for
/// no error, or a quote of nothing tracked.
///
/// # Safety
///
/// `ip` points at the packet's IPv6 header; `k` at the slot's key.
#[inline(always)]
unsafe fn quoted(
    ctx: &TcContext,
    ip: *const Ipv6Hdr,
    k: *mut CtKey6,
    inbound: bool,
) -> Option<usize> {
    let q: *const [u8; 8 + 40 + 8] = ptr_at(ctx, L4_OFF)?;
    // SAFETY: the caller's pointers; `ptr_at` checked the quote's bytes.
    unsafe {
        let ty = (*q)[0];
        // The quote's headers must lie in the packet, not in the frame's
        // padding past its payload length.
        let room = usize::from(u16::from_be_bytes((*ip).payload_len));
        if (*ip).next_hdr != PROTO_ICMPV6 || ty == 0 || ty > ICMPV6_ERROR_LAST || room < 8 + 40 + 8
        {
            return None;
        }
        let l4 = 8 + 40;
        let proto = (*q)[8 + 6];
        let (sport, dport, port_off) = match proto {
            PROTO_TCP | PROTO_UDP => (
                [(*q)[l4], (*q)[l4 + 1]],
                [(*q)[l4 + 2], (*q)[l4 + 3]],
                if inbound { QUOTE_L4 } else { QUOTE_L4 + 2 },
            ),
            // An echo request as it left: its identifier is its "source
            // port".
            PROTO_ICMPV6 if (*q)[l4] == ICMPV6_ECHO_REQUEST => {
                ([(*q)[l4 + 4], (*q)[l4 + 5]], [0, 0], QUOTE_L4 + 4)
            }
            _ => return None,
        };
        for i in 0..16 {
            (*k).saddr[i] = (*q)[8 + 24 + i];
            (*k).daddr[i] = (*q)[8 + 8 + i];
        }
        (*k).sport = dport;
        (*k).dport = sport;
        (*k).proto = proto;
        (*k).pad = [0; 3];
        Some(port_off)
    }
}
