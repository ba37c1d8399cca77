//! Connection tracking: `CT4`, an LRU hash of [`CtKey`] -> [`CtEntry`].
//!
//! A translated flow has two entries, one per direction, each keyed by the
//! tuple as it is seen at the hook that meets it first (before any rewrite),
//! and each holding the tuple to rewrite it to. One lookup per packet.
//! The datapath creates and refreshes entries; the agent sweeps those whose
//! time is up (see [`timeout_ns`]) and removes those a change of
//! publications makes stale.

use crate::publish::{PROTO_TCP, PROTO_UDP, PublishKey};

/// A flow's tuple in one direction, as on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    pub sport: [u8; 2],
    pub dport: [u8; 2],
    pub proto: u8,
    /// Explicit padding, always zero.
    pub pad: [u8; 3],
}

/// One direction of a tracked flow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtEntry {
    /// The tuple the packet leaves with (equal to the key: no rewrite).
    pub nat_saddr: [u8; 4],
    pub nat_daddr: [u8; 4],
    pub nat_sport: [u8; 2],
    pub nat_dport: [u8; 2],
    /// [`DIR_ORIGINAL`] or [`DIR_REPLY`].
    pub dir: u8,
    /// [`KIND_DNAT`], [`KIND_HAIRPIN`], [`KIND_SNAT`] or [`KIND_ROUTED`].
    pub kind: u8,
    /// TCP flags seen in this direction since the flow (re)started, or-ed together.
    pub tcp_flags: u8,
    /// [`CT_INNER`], or 0.
    pub flags: u8,
    /// Host-side ifindex of the backend container's veth (DNAT).
    pub backend_ifindex: u32,
    /// The network of the container the flow belongs to.
    pub network_id: u32,
    /// `CLOCK_MONOTONIC` nanoseconds when the flow was created, to the
    /// kernel's tick (`bpf_ktime_get_coarse_ns`: no clock read per packet).
    pub created_ns: u64,
    /// `CLOCK_MONOTONIC` nanoseconds of the last packet in this direction,
    /// to the tick.
    pub last_seen_ns: u64,
    pub packets: u64,
    pub bytes: u64,
    /// The publication the flow came in by (`PORT_STATS` key); all zero
    /// (protocol 0) for flows that are not a published port's.
    pub publication: PublishKey,
}

/// [`CtEntry::flags`]: the entry's key has a container of this node as
/// its source (the answers of a published port, a container's own flows).
/// A packet from outside that finds such an entry claims a container's
/// address: a bogon, dropped before it touches the flow.
pub const CT_INNER: u8 = 1;

/// [`CtEntry::flags`]: the flow's first packet left after the node's
/// netfilter translated it (a container's packet to a Service, handed to
/// the stack, `MARK_VIA_STACK`): its answers are rewritten and handed to
/// the stack as well, whose conntrack undoes that translation, never
/// sent straight into the container.
pub const CT_STACK: u8 = 1 << 1;

/// The direction that opened the flow.
pub const DIR_ORIGINAL: u8 = 0;
/// The answers.
pub const DIR_REPLY: u8 = 1;

/// A published port reached from outside the node (uplink ingress).
pub const KIND_DNAT: u8 = 1;
/// A published port reached from a container through a node address.
pub const KIND_HAIRPIN: u8 = 2;
/// A container's flow to the outside, masqueraded (SNAT).
pub const KIND_SNAT: u8 = 3;
/// A flow forwarded untranslated between a container and the outside
/// (routed mode, `--masquerade=false`): tracked only so that its answers,
/// and nothing unsolicited, get in.
pub const KIND_ROUTED: u8 = 4;

/// TCP flag bits, as in the header's 14th byte.
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// Capacity of `CT4` (entries, two per flow).
pub const MAX_CT_ENTRIES: u32 = 262_144;

/// Timeouts, in seconds (the order of Linux's defaults).
pub const TCP_SYN_TIMEOUT: u64 = 60;
pub const TCP_ESTABLISHED_TIMEOUT: u64 = 6 * 3600;
pub const TCP_CLOSING_TIMEOUT: u64 = 10;
pub const UDP_TIMEOUT: u64 = 60;
pub const OTHER_TIMEOUT: u64 = 30;

/// The state of a flow, derived from both directions' flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowState {
    /// TCP: only the opening side has spoken.
    SynSent,
    /// TCP: both sides have spoken, no FIN or RST yet.
    Established,
    /// TCP: a RST, or a FIN from both sides.
    Closing,
    /// UDP and everything else.
    Stateless,
}

impl FlowState {
    /// The state of a flow of `proto`, from the flags its original and
    /// reply directions have seen (`None`: that entry is gone).
    #[must_use]
    pub fn of(proto: u8, original: Option<u8>, reply: Option<u8>) -> Self {
        if proto != PROTO_TCP {
            return FlowState::Stateless;
        }
        let (o, r) = (original.unwrap_or(0), reply.unwrap_or(0));
        if (o | r) & TCP_RST != 0 || (o & TCP_FIN != 0 && r & TCP_FIN != 0) {
            FlowState::Closing
        } else if r == 0 {
            FlowState::SynSent
        } else {
            FlowState::Established
        }
    }

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            FlowState::SynSent => "syn-sent",
            FlowState::Established => "established",
            FlowState::Closing => "closing",
            FlowState::Stateless => "-",
        }
    }
}

/// Whether a packet of `proto` with `tcp_flags` opens a TCP connection
/// (a SYN without ACK): a flow that meets one starts over.
#[must_use]
#[inline]
pub const fn is_tcp_open(proto: u8, tcp_flags: u8) -> bool {
    proto == PROTO_TCP && tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN
}

/// Whether a masquerade claim (a TCP flow's answers' entry, its flags
/// `reply`) may go to a new connection: its flow has ended (a RST, or a
/// FIN each way) or its own entry (flags `original`) is gone. Linux's
/// NAT reuses a closed connection's tuple the same way.
#[must_use]
#[inline]
pub fn claim_is_free(original: Option<u8>, reply: u8) -> bool {
    original.is_none() || FlowState::of(PROTO_TCP, original, Some(reply)) == FlowState::Closing
}

/// How long a flow of `proto` in `state` lives after its last packet.
#[must_use]
pub fn timeout_ns(proto: u8, state: FlowState) -> u64 {
    let secs = match (proto, state) {
        (PROTO_TCP, FlowState::SynSent) => TCP_SYN_TIMEOUT,
        (PROTO_TCP, FlowState::Closing) => TCP_CLOSING_TIMEOUT,
        (PROTO_TCP, _) => TCP_ESTABLISHED_TIMEOUT,
        (PROTO_UDP, _) => UDP_TIMEOUT,
        _ => OTHER_TIMEOUT,
    };
    secs * 1_000_000_000
}

impl CtKey {
    /// A key, its padding zero. Made of four 32-bit words, so that the
    /// eBPF object stores it with four instructions: a literal `[0; 3]`
    /// became a call to a byte-by-byte `memset` there, on every packet.
    #[must_use]
    #[inline]
    pub const fn new(
        saddr: [u8; 4],
        daddr: [u8; 4],
        sport: [u8; 2],
        dport: [u8; 2],
        proto: u8,
    ) -> Self {
        let words = [
            u32::from_ne_bytes(saddr),
            u32::from_ne_bytes(daddr),
            u32::from_ne_bytes([sport[0], sport[1], dport[0], dport[1]]),
            u32::from_ne_bytes([proto, 0, 0, 0]),
        ];
        // SAFETY: `CtKey` is `repr(C)`, 16 bytes of byte arrays and one
        // byte, every bit pattern valid; the words are laid out the same.
        unsafe { core::mem::transmute::<[u32; 4], CtKey>(words) }
    }

    /// The key of the other direction of the flow this entry rewrites to:
    /// the reply to a packet that left as `nat_*` comes back reversed.
    #[must_use]
    pub const fn reply_of(entry: &CtEntry, proto: u8) -> Self {
        CtKey::new(
            entry.nat_daddr,
            entry.nat_saddr,
            entry.nat_dport,
            entry.nat_sport,
            proto,
        )
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for CtKey {}
#[cfg(feature = "user")]
// SAFETY: repr(C), explicit padding, every bit pattern valid.
unsafe impl aya::Pod for CtEntry {}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<CtKey>(), 16);
        assert_eq!(size_of::<CtEntry>(), 64);
    }

    #[test]
    fn tcp_state_follows_both_directions() {
        let s = |o, r| FlowState::of(PROTO_TCP, o, r);
        assert_eq!(s(Some(TCP_SYN), None), FlowState::SynSent);
        assert_eq!(s(Some(TCP_SYN), Some(0)), FlowState::SynSent);
        assert_eq!(
            s(Some(TCP_SYN | TCP_ACK), Some(TCP_SYN | TCP_ACK)),
            FlowState::Established
        );
        assert_eq!(
            s(Some(TCP_ACK | TCP_FIN), Some(TCP_ACK)),
            FlowState::Established
        );
        assert_eq!(
            s(Some(TCP_ACK | TCP_FIN), Some(TCP_ACK | TCP_FIN)),
            FlowState::Closing
        );
        assert_eq!(s(Some(TCP_ACK), Some(TCP_RST)), FlowState::Closing);
        assert_eq!(
            FlowState::of(PROTO_UDP, Some(0), None),
            FlowState::Stateless
        );
        assert!(
            timeout_ns(PROTO_TCP, FlowState::Established)
                > timeout_ns(PROTO_UDP, FlowState::Stateless)
        );
        assert_eq!(timeout_ns(PROTO_TCP, FlowState::Closing), 10_000_000_000);
    }

    #[test]
    fn a_syn_alone_opens_and_only_an_ended_or_orphaned_claim_is_free() {
        assert!(is_tcp_open(PROTO_TCP, TCP_SYN));
        assert!(!is_tcp_open(PROTO_TCP, TCP_SYN | TCP_ACK));
        assert!(!is_tcp_open(PROTO_TCP, TCP_ACK));
        assert!(!is_tcp_open(PROTO_UDP, TCP_SYN));
        assert!(claim_is_free(None, 0));
        assert!(claim_is_free(Some(TCP_ACK), TCP_RST));
        assert!(claim_is_free(Some(TCP_ACK | TCP_FIN), TCP_ACK | TCP_FIN));
        assert!(!claim_is_free(Some(TCP_SYN), 0));
        assert!(!claim_is_free(Some(TCP_ACK | TCP_FIN), TCP_ACK));
    }

    #[test]
    fn a_key_made_of_words_is_the_key_made_of_fields() {
        let fields = CtKey {
            saddr: [10, 88, 0, 2],
            daddr: [203, 0, 113, 2],
            sport: [0x9c, 0x40],
            dport: [0, 80],
            proto: PROTO_TCP,
            pad: [0; 3],
        };
        assert_eq!(
            CtKey::new(
                [10, 88, 0, 2],
                [203, 0, 113, 2],
                [0x9c, 0x40],
                [0, 80],
                PROTO_TCP
            ),
            fields
        );
    }

    #[test]
    fn reply_key_reverses_the_rewritten_tuple() {
        let e = CtEntry {
            nat_saddr: [203, 0, 113, 2],
            nat_daddr: [10, 0, 0, 2],
            nat_sport: [0x9c, 0x40],
            nat_dport: [0, 80],
            ..CtEntry::default()
        };
        let k = CtKey::reply_of(&e, PROTO_TCP);
        assert_eq!(
            (k.saddr, k.daddr, k.sport, k.dport),
            ([10, 0, 0, 2], [203, 0, 113, 2], [0, 80], [0x9c, 0x40])
        );
    }
}
