//! XDP's own forwarding: a packet from outside of a tracked flow (`CT4`:
//! a published port's flow, the answers of a masqueraded one) or that
//! opens a flow to a published port (`PUBLISH4`), bound for a container
//! whose veth takes XDP frames ([`EP_XDP_TARGET`]), is translated in the
//! frame and redirected into that veth (`bpf_redirect` from XDP: the frame
//! goes to the veth's container end without an skb on the uplink).
//! Conntrack, counters and policy are tc's, called the same way.
//!
//! Everything else goes on to tc unchanged, which then does the same
//! work itself ([`forward`] returns `None` before touching any map):
//! IP options, fragments, ICMP, a TTL about to expire, a frame in several
//! buffers, an endpoint of an engine's veth, and a frame whose L4 checksum
//! is still a local sender's offload. That last one only a veth uplink
//! sees (a wire carries complete checksums): the checksum field then
//! holds just the pseudo-header's sum, which the device or the kernel was
//! to finish. XDP cannot know that, and a frame redirected from XDP loses
//! the kernel's note of it; tc can, so such a frame goes there. Taking a
//! complete checksum that happens to equal its pseudo-header's sum for an
//! unfinished one (1 in 65536) only sends a frame the slower way.

use aya_ebpf::helpers::bpf_redirect;
use network_types::ip::Ipv4Hdr;
use weir_common::{
    ct::{CT_STACK, CtEntry, KIND_DNAT, KIND_SNAT},
    drop::DropReason,
    endpoint::{EP_XDP_TARGET, EndpointRef},
    publish::{PROTO_TCP, PROTO_UDP},
};

use crate::{
    ct::{self, Known, Sides},
    dnat,
    head::{self, Head, addr_diff, word_diff},
    maps::EP_BY_IP4,
    parse::{Flow, IP_DST_OFF, IP_SRC_OFF, Packet, XdpFrame, ptr_at},
    policy, stats, to_uplink,
};

/// What [`forward`] did, and what it found out on the way.
pub enum Forwarded {
    /// Sent on by XDP itself: the verdict (`XDP_REDIRECT`).
    Sent(u32),
    /// Not forwarded, and the flow is tracked (`CT4` has its tuple).
    Tracked,
    /// Not forwarded; no entry, and (to a container) no publication.
    Untracked,
    /// Not looked at: a frame XDP does not forward; tc's.
    Unseen,
}

/// Forwards `flow`'s frame into its container when XDP can. `to_container`:
/// the frame is addressed to a container, which no publication is (only
/// its tracked flows can be forwarded). Whatever else it says spares the
/// caller a second lookup of the tuple.
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "`bpf_redirect` returns an i64 by its ABI: here `XDP_REDIRECT` or `XDP_ABORTED`"
)]
pub fn forward(
    frame: &XdpFrame,
    ip: *const Ipv4Hdr,
    flow: &Flow,
    to_container: bool,
) -> Result<Forwarded, DropReason> {
    let Some(csum_off) = eligible(frame, ip, flow) else {
        return Ok(Forwarded::Unseen);
    };
    let len = frame.len();
    let mut target = EndpointRef::default();
    // A flow netfilter translated first (`CT_STACK`) goes back through
    // the stack: tc's.
    let taken = ct::lookup_taken(flow, len, true, true, |e| {
        e.flags & CT_STACK == 0 && xdp_target(e.nat_daddr).map(|t| target = t).is_some()
    })?;
    let entry = match taken {
        Known::Taken(entry) => {
            if entry.kind == KIND_SNAT {
                stats::nat(entry.network_id, to_uplink::traffic(len));
            }
            entry
        }
        Known::Declined => return Ok(Forwarded::Tracked),
        Known::Unknown if to_container => return Ok(Forwarded::Untracked),
        Known::Unknown => {
            let k = &flow.key;
            let Some((key, publication)) = dnat::lookup(k.daddr, k.dport, k.proto, false) else {
                return Ok(Forwarded::Untracked);
            };
            let Some(t) = xdp_target(publication.ip) else {
                return Ok(Forwarded::Unseen);
            };
            policy::outsider_to_publication(&publication)?;
            target = t;
            ct::create(
                flow,
                len,
                (KIND_DNAT, Sides::IN),
                (key, &publication),
                false,
            )?
        }
    };
    rewrite(frame, flow, &entry, csum_off, &target)?;
    // SAFETY: a helper taking plain values.
    Ok(Forwarded::Sent(
        unsafe { bpf_redirect(target.ifindex, 0) } as u32
    ))
}

/// The frame offset of the L4 checksum when XDP may forward the frame:
/// TCP or UDP right after a 20-byte IP header, not a first fragment (tc
/// records those), all in one buffer, a TTL to spare, and a complete L4
/// checksum.
#[inline(always)]
fn eligible(frame: &XdpFrame, ip: *const Ipv4Hdr, flow: &Flow) -> Option<usize> {
    let csum_off = match flow.key.proto {
        PROTO_TCP => head::PORTS_OFF + 16,
        PROTO_UDP => head::PORTS_OFF + 6,
        _ => return None,
    };
    if flow.l4_off != head::PORTS_OFF
        || flow.more_fragments
        || frame.frame_len() != frame.data_end() - frame.data()
    {
        return None;
    }
    // SAFETY: `ip` came from `parse::ipv4`, which checked the header.
    let (ttl, tot_len) = unsafe { ((*ip).ttl, u16::from_be_bytes((*ip).tot_len)) };
    if ttl <= 1 {
        return None;
    }
    let field = ptr_at::<[u8; 2]>(frame, csum_off)?;
    // SAFETY: `ptr_at` checked the bytes are in the frame.
    let field = unsafe { *field };
    let none = flow.key.proto == PROTO_UDP && field == [0, 0];
    if !none && field == pseudo_header_sum(&flow.key, tot_len - 20) {
        return None;
    }
    Some(csum_off)
}

/// The folded sum of the IPv4 pseudo-header (as in memory): what a local
/// stack leaves in the checksum field for its device to finish.
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "folded twice, the sum is at most 0xffff"
)]
fn pseudo_header_sum(k: &weir_common::ct::CtKey, l4_len: u16) -> [u8; 2] {
    let words = [
        [k.saddr[0], k.saddr[1]],
        [k.saddr[2], k.saddr[3]],
        [k.daddr[0], k.daddr[1]],
        [k.daddr[2], k.daddr[3]],
        [0, k.proto],
        l4_len.to_be_bytes(),
    ];
    let mut sum = 0u32;
    for w in words {
        sum += u32::from(u16::from_ne_bytes(w));
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    (sum as u16).to_ne_bytes()
}

/// The container an entry's packets go to, when its veth takes XDP frames.
#[inline(always)]
fn xdp_target(daddr: [u8; 4]) -> Option<EndpointRef> {
    let ep = EP_BY_IP4.get_ptr(daddr)?;
    // SAFETY: a value pointer from a map lookup, read at once.
    let ep = unsafe { *ep };
    (ep.flags & EP_XDP_TARGET != 0).then_some(ep)
}

/// Gives the frame `to`'s tuple and readdresses it to the container: the
/// L4 checksum by RFC 1624 (a UDP checksum of 0 stays 0, one that comes
/// to 0 is sent as 0xffff), the head (MACs, TTL, addresses, ports, IP
/// checksum) in one store.
#[inline(always)]
fn rewrite(
    frame: &XdpFrame,
    flow: &Flow,
    to: &CtEntry,
    csum_off: usize,
    ep: &EndpointRef,
) -> Result<(), DropReason> {
    let k = &flow.key;
    let mut diff = addr_diff(0, k.saddr, to.nat_saddr);
    diff = addr_diff(diff, k.daddr, to.nat_daddr);
    diff = word_diff(diff, k.sport, to.nat_sport);
    diff = word_diff(diff, k.dport, to.nat_dport);
    let field = ptr_at::<[u8; 2]>(frame, csum_off).ok_or(DropReason::Malformed)?;
    // SAFETY: `ptr_at` checked the bytes are in the frame; XDP frames are
    // writable.
    unsafe {
        let old = *field;
        if k.proto != PROTO_UDP || old != [0, 0] {
            let mut new = head::apply(old, diff);
            if k.proto == PROTO_UDP && new == [0, 0] {
                new = [0xff, 0xff];
            }
            *field.cast_mut() = new;
        }
    }
    let mut h = Head::read(frame)?;
    h.set_addr(IP_SRC_OFF, to.nat_saddr);
    h.set_addr(IP_DST_OFF, to.nat_daddr);
    h.set_ports(to.nat_sport, to.nat_dport);
    // `eligible` saw a TTL to spare.
    h.decrement_ttl();
    h.set_macs(ep.mac, h.dst_mac());
    h.write_xdp(frame)
}
