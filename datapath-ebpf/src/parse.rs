//! Bounds-checked access to packet headers, for tc and XDP alike.

use core::mem;

use aya_ebpf::programs::{TcContext, XdpContext};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::Ipv4Hdr,
};
use weir_common::{
    ct::CtKey,
    drop::DropReason,
    frag::FragKey,
    publish::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
};

/// Ethernet types, as on the wire.
pub const ETH_P_IP: [u8; 2] = [0x08, 0x00];
pub const ETH_P_ARP: [u8; 2] = [0x08, 0x06];
pub const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];

/// Offset of the IPv4 header in an Ethernet frame.
pub const IP_OFF: usize = EthHdr::LEN;
/// Offsets of IPv4 header fields, from the start of the frame.
pub const IP_TTL_OFF: usize = IP_OFF + 8;
pub const IP_CSUM_OFF: usize = IP_OFF + 10;
pub const IP_SRC_OFF: usize = IP_OFF + 12;
pub const IP_DST_OFF: usize = IP_OFF + 16;

/// A packet whose headers lie between `data` and `data_end` (tc or XDP).
pub trait Packet {
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
    /// The whole frame's length. For an skb this can exceed
    /// `data_end - data`: only the linear part is directly readable.
    fn frame_len(&self) -> usize;
}

/// An XDP frame with its whole length (all its buffers), asked of the
/// kernel once: the hook's counters, the IPv4 length check and a drop all
/// use it.
pub struct XdpFrame<'a> {
    pub ctx: &'a XdpContext,
    len: usize,
}

impl<'a> XdpFrame<'a> {
    #[inline(always)]
    pub fn new(ctx: &'a XdpContext) -> Self {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "a frame's length, far below 4 GiB"
        )]
        // SAFETY: the helper takes the program's own context.
        let len = unsafe { aya_ebpf::helpers::bpf_xdp_get_buff_len(ctx.ctx) } as usize;
        Self { ctx, len }
    }

    /// The whole frame's length, as a counter takes it.
    #[inline(always)]
    pub fn len(&self) -> u32 {
        u32::try_from(self.len).unwrap_or(u32::MAX)
    }
}

impl Packet for XdpFrame<'_> {
    #[inline(always)]
    fn data(&self) -> usize {
        self.ctx.data()
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        self.ctx.data_end()
    }
    /// The whole frame, all its buffers (only the first is read: the
    /// headers are there).
    #[inline(always)]
    fn frame_len(&self) -> usize {
        self.len
    }
}

impl Packet for TcContext {
    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }
    #[inline(always)]
    fn frame_len(&self) -> usize {
        self.len() as usize
    }
}

/// The most header bytes the datapath reads: Ethernet, IPv4 with the
/// longest options, and an ICMP error quoting an IPv4 header with the
/// longest options and 8 bytes of its L4 header.
const HEADERS_MAX: usize = EthHdr::LEN + 60 + 8 + 60 + 8;

/// Makes the headers of an skb directly readable: a packet built from
/// pages (GRO, a veth from another namespace) may hold them outside the
/// linear part, where `data_end` stops. Only headers are pulled, never
/// payload: a TCP segment from a local stack is a clone whose payload
/// sits in pages it shares with the socket's copy, and pulling any of it
/// into the linear part makes the kernel copy the whole head first.
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "`want` is at most the skb's length, a u32"
)]
pub fn linearize(ctx: &TcContext) {
    let len = ctx.len() as usize;
    let mut want = headers_len(ctx);
    if want > len {
        want = len;
    }
    if ctx.data_end() - ctx.data() < want {
        // On failure the checks below see a short packet and say so.
        let _ = ctx.pull_data(want as u32);
    }
}

/// How many bytes from the frame's start the datapath may read: the
/// Ethernet header, the IPv4 header with its options, and as much of the
/// L4 header as is read or rewritten (TCP's fixed 20 bytes, UDP's 8, an
/// ICMP error's quote). [`HEADERS_MAX`] when the fixed part of the IPv4
/// header is not linear yet, so that one pull does.
#[inline(always)]
fn headers_len(ctx: &TcContext) -> usize {
    // Ethernet and the IPv4 header up to its protocol byte.
    let Some(b) = ptr_at::<[u8; IP_OFF + 10]>(ctx, 0) else {
        return HEADERS_MAX;
    };
    // SAFETY: `ptr_at` checked the bytes.
    let (ether_type, vihl, proto) =
        unsafe { ([(*b)[12], (*b)[13]], (*b)[IP_OFF], (*b)[IP_OFF + 9]) };
    if ether_type == ETH_P_ARP {
        return IP_OFF + 28;
    }
    if ether_type == ETH_P_IPV6 {
        // Its fixed header and a neighbour advertisement's first 24 bytes
        // (`crate::v6`), or an ICMPv6 error's header and quote (`crate::nat6`).
        return if proto_v6(b) == PROTO_ICMPV6 {
            IP_OFF + 40 + 8 + 40 + 8
        } else {
            IP_OFF + 40 + 24
        };
    }
    if ether_type != ETH_P_IP {
        return EthHdr::LEN;
    }
    let l4 = match proto {
        PROTO_TCP => 20,
        PROTO_UDP => 8,
        PROTO_ICMP => 8 + 60 + 8,
        _ => 0,
    };
    IP_OFF + usize::from(vihl & 0x0f) * 4 + l4
}

/// An IPv6 header's next header, from the first bytes of its frame.
#[inline(always)]
fn proto_v6(b: *const [u8; IP_OFF + 10]) -> u8 {
    // SAFETY: the caller's `ptr_at` checked the bytes.
    unsafe { (*b)[IP_OFF + 6] }
}

/// A pointer to a `T` at `offset`, or `None` when the packet is too short.
/// The check is the one the verifier wants to see before any access.
#[inline(always)]
pub fn ptr_at<T>(pkt: &impl Packet, offset: usize) -> Option<*const T> {
    let start = pkt.data();
    if start + offset + mem::size_of::<T>() > pkt.data_end() {
        return None;
    }
    Some((start + offset) as *const T)
}

/// The IPv4 header of an Ethernet frame, validated: version 4, a header
/// length of at least 20 bytes, and a total length that fits the frame.
/// `Ok(None)` for a frame that is not IPv4 (ARP, IPv6, ...).
#[inline(always)]
pub fn ipv4(pkt: &impl Packet) -> Result<Option<*const Ipv4Hdr>, DropReason> {
    let eth: *const EthHdr = ptr_at(pkt, 0).ok_or(DropReason::Malformed)?;
    // SAFETY: `ptr_at` checked that the whole header is inside the packet.
    if unsafe { (*eth).ether_type } != EtherType::Ipv4 as u16 {
        return Ok(None);
    }
    let ip: *const Ipv4Hdr = ptr_at(pkt, IP_OFF).ok_or(DropReason::Malformed)?;
    // SAFETY: as above.
    let (vihl, tot_len) = unsafe { ((*ip).vihl, u16::from_be_bytes((*ip).tot_len)) };
    let header_len = usize::from(vihl & 0x0f) * 4;
    let frame_room = pkt.frame_len().saturating_sub(IP_OFF);
    if vihl >> 4 != 4
        || header_len < Ipv4Hdr::LEN
        || usize::from(tot_len) < header_len
        || usize::from(tot_len) > frame_room
    {
        return Err(DropReason::Malformed);
    }
    Ok(Some(ip))
}

/// Whether an Ethernet frame carries IPv6.
#[inline(always)]
pub fn is_ipv6(pkt: &impl Packet) -> bool {
    // SAFETY: `ptr_at` checked the bytes are in the packet.
    ptr_at::<[u8; 2]>(pkt, 12).is_some_and(|t| unsafe { *t } == ETH_P_IPV6)
}

/// A TCP or UDP packet the datapath may translate: its tuple as on the
/// wire and where its L4 header starts.
#[derive(Clone, Copy)]
pub struct Flow {
    pub key: CtKey,
    /// Offset of the TCP or UDP header from the start of the frame.
    pub l4_off: usize,
    /// The TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
    /// The first fragment of a fragmented datagram (more follow): its
    /// translation is recorded for the rest (`crate::frag`).
    pub more_fragments: bool,
    /// The IP identification, which names the datagram's fragments.
    pub ip_id: [u8; 2],
}

impl Flow {
    /// Offset of the L4 checksum from the start of the frame.
    #[inline(always)]
    pub fn csum_off(&self) -> usize {
        self.l4_off
            + match self.key.proto {
                PROTO_TCP => 16,
                PROTO_UDP => 6,
                _ => 2,
            }
    }

    /// Offsets of the source and destination "port": the ports of TCP and
    /// UDP; for ICMP echo, the identifier (which the key holds as the
    /// source port of a request and the destination port of a reply).
    #[inline(always)]
    pub fn port_offs(&self) -> (usize, usize) {
        if self.key.proto == PROTO_ICMP {
            (self.l4_off + 4, self.l4_off + 4)
        } else {
            (self.l4_off, self.l4_off + 2)
        }
    }

    /// A TCP segment that opens a flow: SYN without ACK.
    #[inline(always)]
    pub fn is_tcp_open(&self) -> bool {
        weir_common::ct::is_tcp_open(self.key.proto, self.tcp_flags)
    }
}

/// ICMP echo types.
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;

/// The TCP, UDP or ICMP echo flow of a validated IPv4 packet. An echo
/// request's key has the identifier as its source port and 0 as its
/// destination port; a reply the other way round, so that a reply's key is
/// the reverse of its request's. `Ok(None)` for other protocols and ICMP
/// types, and for a fragment after the first (it has no L4 header:
/// [`later_fragment`]). A first fragment is a flow's packet like any
/// other, marked [`Flow::more_fragments`].
#[inline(always)]
pub fn flow(pkt: &impl Packet, ip: *const Ipv4Hdr) -> Result<Option<Flow>, DropReason> {
    // SAFETY: `ip` came from `ipv4`, which checked the whole header.
    let (vihl, proto, frags, saddr, daddr, ip_id) = unsafe {
        (
            (*ip).vihl,
            (*ip).proto,
            u16::from_be_bytes((*ip).frags),
            (*ip).src_addr,
            (*ip).dst_addr,
            (*ip).id,
        )
    };
    if frags & FRAG_OFFSET != 0 {
        return Ok(None);
    }
    let l4_off = IP_OFF + usize::from(vihl & 0x0f) * 4;
    let (ports, tcp_flags) = match proto {
        PROTO_TCP => {
            let tcp: *const [u8; 14] = ptr_at(pkt, l4_off).ok_or(DropReason::Malformed)?;
            // SAFETY: `ptr_at` checked the 14 bytes.
            let b = unsafe { *tcp };
            ([b[0], b[1], b[2], b[3]], b[13])
        }
        PROTO_UDP => {
            let udp: *const [u8; 8] = ptr_at(pkt, l4_off).ok_or(DropReason::Malformed)?;
            // SAFETY: `ptr_at` checked the 8 bytes.
            let b = unsafe { *udp };
            ([b[0], b[1], b[2], b[3]], 0)
        }
        PROTO_ICMP => {
            let icmp: *const [u8; 8] = ptr_at(pkt, l4_off).ok_or(DropReason::Malformed)?;
            // SAFETY: `ptr_at` checked the 8 bytes.
            let b = unsafe { *icmp };
            match b[0] {
                ICMP_ECHO_REQUEST => ([b[4], b[5], 0, 0], 0),
                ICMP_ECHO_REPLY => ([0, 0, b[4], b[5]], 0),
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(Flow {
        key: CtKey::new(
            saddr,
            daddr,
            [ports[0], ports[1]],
            [ports[2], ports[3]],
            proto,
        ),
        l4_off,
        tcp_flags,
        more_fragments: frags & MORE_FRAGMENTS != 0,
        ip_id,
    }))
}

/// Whether a validated IPv4 packet is ICMP.
#[inline(always)]
pub fn is_icmp(ip: *const Ipv4Hdr) -> bool {
    // SAFETY: `ip` came from `ipv4`, which checked the whole header.
    unsafe { (*ip).proto == PROTO_ICMP }
}

/// The more-fragments flag and the fragment offset of `frags`.
const MORE_FRAGMENTS: u16 = 0x2000;
const FRAG_OFFSET: u16 = 0x1fff;

/// A fragment after a datagram's first (a non-zero offset): the datagram
/// as it arrived, for `FRAG4`.
#[inline(always)]
pub fn later_fragment(ip: *const Ipv4Hdr) -> Option<FragKey> {
    // SAFETY: `ip` came from `ipv4`, which checked the whole header.
    let (frags, proto, saddr, daddr, id) = unsafe {
        (
            u16::from_be_bytes((*ip).frags),
            (*ip).proto,
            (*ip).src_addr,
            (*ip).dst_addr,
            (*ip).id,
        )
    };
    (frags & FRAG_OFFSET != 0).then(|| FragKey::new(saddr, daddr, id, proto))
}

/// ICMP error types that quote the packet they are about.
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_PARAM_PROBLEM: u8 = 12;

/// An ICMP error about a TCP, UDP or ICMP echo packet: where its parts
/// are, and the quoted packet's tuple as it was sent.
#[derive(Clone, Copy)]
pub struct IcmpError {
    pub outer_saddr: [u8; 4],
    pub outer_daddr: [u8; 4],
    /// Offset of the ICMP header.
    pub icmp_off: usize,
    /// Offset of the quoted IPv4 header and of its L4 header.
    pub inner_ip_off: usize,
    pub inner_l4_off: usize,
    /// The quoted packet's tuple, as in its headers.
    pub inner: CtKey,
}

impl IcmpError {
    /// The key of the flow direction the quoted packet's answers take:
    /// the quoted packet left as the reverse of that key's rewrite.
    #[inline(always)]
    pub fn reply_key(&self) -> CtKey {
        let i = &self.inner;
        let (sport, dport) = if i.proto == PROTO_ICMP {
            // An echo request quoted: its answer is a reply with the id.
            ([0, 0], i.sport)
        } else {
            (i.dport, i.sport)
        };
        CtKey::new(i.daddr, i.saddr, sport, dport, i.proto)
    }
}

/// The ICMP error in a validated IPv4 packet, if it is one about a TCP,
/// UDP or ICMP echo packet whose headers it quotes (8 bytes of L4).
#[inline(always)]
#[expect(
    clippy::similar_names,
    reason = "sources and destinations, named as the IP header's fields (`saddr`, `daddr`)"
)]
pub fn icmp_error(pkt: &impl Packet, ip: *const Ipv4Hdr) -> Option<IcmpError> {
    // SAFETY: `ip` came from `ipv4`, which checked the whole header.
    let (vihl, tot_len, proto, frags, outer_saddr, outer_daddr) = unsafe {
        (
            (*ip).vihl,
            usize::from(u16::from_be_bytes((*ip).tot_len)),
            (*ip).proto,
            u16::from_be_bytes((*ip).frags),
            (*ip).src_addr,
            (*ip).dst_addr,
        )
    };
    if proto != PROTO_ICMP || frags & 0x3fff != 0 {
        return None;
    }
    let icmp_off = IP_OFF + usize::from(vihl & 0x0f) * 4;
    let icmp: *const [u8; 8] = ptr_at(pkt, icmp_off)?;
    // SAFETY: `ptr_at` checked the 8 bytes.
    let kind = unsafe { (*icmp)[0] };
    if kind != ICMP_DEST_UNREACH && kind != ICMP_TIME_EXCEEDED && kind != ICMP_PARAM_PROBLEM {
        return None;
    }
    let inner_ip_off = icmp_off + 8;
    let inner: *const Ipv4Hdr = ptr_at(pkt, inner_ip_off)?;
    // SAFETY: `ptr_at` checked the quoted header's fixed part.
    let (ivihl, iproto, isaddr, idaddr) = unsafe {
        (
            (*inner).vihl,
            (*inner).proto,
            (*inner).src_addr,
            (*inner).dst_addr,
        )
    };
    let inner_hl = usize::from(ivihl & 0x0f) * 4;
    if ivihl >> 4 != 4 || inner_hl < Ipv4Hdr::LEN {
        return None;
    }
    let inner_l4_off = inner_ip_off + inner_hl;
    // The quote must lie in the packet, not in the frame's padding past
    // its total length.
    if inner_l4_off + 8 > IP_OFF + tot_len {
        return None;
    }
    let l4: *const [u8; 8] = ptr_at(pkt, inner_l4_off)?;
    // SAFETY: `ptr_at` checked the 8 quoted L4 bytes.
    let b = unsafe { *l4 };
    let (sport, dport) = match iproto {
        PROTO_TCP | PROTO_UDP => ([b[0], b[1]], [b[2], b[3]]),
        PROTO_ICMP if b[0] == ICMP_ECHO_REQUEST => ([b[4], b[5]], [0, 0]),
        _ => return None,
    };
    Some(IcmpError {
        outer_saddr,
        outer_daddr,
        icmp_off,
        inner_ip_off,
        inner_l4_off,
        inner: CtKey::new(isaddr, idaddr, sport, dport, iproto),
    })
}
