//! Drop reasons: stable numbers shared by the datapath and the agent.
//!
//! A number, once released, is never reused or renumbered: `weir stats`,
//! `weir monitor` and the `DROP_STATS` map all speak these numbers. New
//! reasons get the next free number. Reason 0 is never a drop.

/// Why the datapath dropped a packet. The discriminant is the stable number
/// and the index into the `DROP_STATS` map.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The frame is too short for its Ethernet header, or its IPv4 header is
    /// not a valid one (version, header length, total length).
    Malformed = 1,
    /// A kernel helper refused to rewrite the packet for NAT (checksum or
    /// store failed): sending it half-translated would be worse.
    RewriteFailed = 2,
    /// A new translated flow could not be tracked (`CT4` insert failed):
    /// its answers could not be translated back.
    CtInsertFailed = 3,
    /// Masquerade found no free port for a new flow in its range (every
    /// probe collided): never a reused tuple.
    SnatExhausted = 4,
    /// A container sent a frame whose source MAC (Ethernet or ARP sender)
    /// is not its endpoint's.
    SpoofedMac = 5,
    /// A container sent an IPv4 packet or ARP whose source address is not
    /// its endpoint's.
    SpoofedIp = 6,
    /// A container addressed a container of another network (only a
    /// published port, through a node address, crosses networks).
    Isolation = 7,
    /// A container of a network with `--icc=false` addressed another
    /// container of its network, at L2 (a MAC, a broadcast, ARP) or L3.
    Icc = 8,
    /// A container of an `--internal` network addressed something beyond
    /// its network and gateway, or an outsider reached for its published port.
    Internal = 9,
    /// From outside: a source or destination in 127.0.0.0/8, or a source
    /// in a local container subnet.
    Bogon = 10,
    /// From outside to a container address: neither a reply to one of its
    /// flows nor, in routed mode, a published port.
    Unsolicited = 11,
    /// A frame from a container veth the agent has not (or no longer)
    /// entered in `ENDPOINTS`: fail closed.
    UnknownEndpoint = 12,
    /// An IPv4 packet reached a bridge weir did not make (an engine's)
    /// from an address that is no endpoint yet: a container the engine
    /// started before weir entered it sends nothing beyond its bridge
    /// until then (no forwarding unmasqueraded, nothing to other networks).
    PendingEndpoint = 13,
    /// A later IPv4 fragment to a container, or from a container of a
    /// masquerading network out of the uplink, whose first fragment was not
    /// translated here (it was lost, or came later): never delivered or sent
    /// with the wrong address.
    FragmentUntracked = 14,
    /// A container sent IPv6 beyond its network and gateway (another
    /// network's containers excepted: that is `isolation`) before weir
    /// masqueraded and routed IPv6. No longer given: a dual-stack
    /// network's IPv6 leaves as its IPv4 does (masqueraded, routed, or
    /// `internal-network`). The number stays taken.
    Ipv6Beyond = 15,
    /// A masquerading network's container's packet was to leave by an
    /// uplink with no address of its family to masquerade with (an
    /// uplink without a global IPv6 address, say): never sent with the
    /// container's private address.
    NoUplinkAddress = 16,
    /// A packet was handed to a program of the datapath's that was not
    /// there (`TAIL_CALLS`: the IPv6 half of `tc_from_container`): never
    /// passed unchecked.
    TailCallFailed = 17,
    /// A flow to a published port from a source its port's list
    /// (`weir allow`, Docker's `DOCKER-USER`) does not hold.
    NotAllowed = 18,
    /// A masquerading network's container's packet reached an uplink that
    /// masquerade cannot translate: an ICMP error about no flow it tracks,
    /// a protocol without ports or identifier (not TCP, UDP or an ICMP
    /// echo). Never sent with the container's private address.
    Untranslatable = 19,
}

impl DropReason {
    /// Every reason, in number order.
    pub const ALL: &'static [DropReason] = &[
        DropReason::Malformed,
        DropReason::RewriteFailed,
        DropReason::CtInsertFailed,
        DropReason::SnatExhausted,
        DropReason::SpoofedMac,
        DropReason::SpoofedIp,
        DropReason::Isolation,
        DropReason::Icc,
        DropReason::Internal,
        DropReason::Bogon,
        DropReason::Unsolicited,
        DropReason::UnknownEndpoint,
        DropReason::PendingEndpoint,
        DropReason::FragmentUntracked,
        DropReason::Ipv6Beyond,
        DropReason::NoUplinkAddress,
        DropReason::TailCallFailed,
        DropReason::NotAllowed,
        DropReason::Untranslatable,
    ];

    /// Size of the `DROP_STATS` array: every reason number is below it.
    pub const MAP_SIZE: u32 = 64;

    /// The stable number of this reason.
    #[must_use]
    pub const fn number(self) -> u32 {
        self as u32
    }

    /// The reason with this stable number, if there is one.
    #[must_use]
    pub fn from_number(number: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.number() == number)
    }

    /// A short, stable, machine-friendly name (`weir stats`, metrics labels).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::RewriteFailed => "nat-rewrite-failed",
            DropReason::CtInsertFailed => "ct-insert-failed",
            DropReason::SnatExhausted => "snat-ports-exhausted",
            DropReason::SpoofedMac => "spoofed-mac",
            DropReason::SpoofedIp => "spoofed-ip",
            DropReason::Isolation => "isolation",
            DropReason::Icc => "icc",
            DropReason::Internal => "internal-network",
            DropReason::Bogon => "bogon",
            DropReason::Unsolicited => "unsolicited",
            DropReason::UnknownEndpoint => "unknown-endpoint",
            DropReason::PendingEndpoint => "pending-endpoint",
            DropReason::FragmentUntracked => "fragment-untracked",
            DropReason::Ipv6Beyond => "ipv6-beyond-network",
            DropReason::NoUplinkAddress => "no-uplink-address",
            DropReason::TailCallFailed => "tail-call-failed",
            DropReason::NotAllowed => "not-allowed",
            DropReason::Untranslatable => "untranslatable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DropReason;

    #[test]
    fn numbers_are_unique_nonzero_and_fit_the_map() {
        for (i, a) in DropReason::ALL.iter().enumerate() {
            assert_ne!(a.number(), 0, "0 is never a drop reason");
            assert!(a.number() < DropReason::MAP_SIZE);
            assert_eq!(DropReason::from_number(a.number()), Some(*a));
            for b in &DropReason::ALL[i + 1..] {
                assert_ne!(a.number(), b.number());
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn released_numbers_never_change() {
        // Changing a line here breaks every dashboard and every old `weir
        // stats` output: add new reasons, never renumber.
        assert_eq!(DropReason::Malformed.number(), 1);
        assert_eq!(DropReason::RewriteFailed.number(), 2);
        assert_eq!(DropReason::CtInsertFailed.number(), 3);
        assert_eq!(DropReason::SnatExhausted.number(), 4);
        assert_eq!(DropReason::SpoofedMac.number(), 5);
        assert_eq!(DropReason::SpoofedIp.number(), 6);
        assert_eq!(DropReason::Isolation.number(), 7);
        assert_eq!(DropReason::Icc.number(), 8);
        assert_eq!(DropReason::Internal.number(), 9);
        assert_eq!(DropReason::Bogon.number(), 10);
        assert_eq!(DropReason::Unsolicited.number(), 11);
        assert_eq!(DropReason::UnknownEndpoint.number(), 12);
        assert_eq!(DropReason::PendingEndpoint.number(), 13);
        assert_eq!(DropReason::FragmentUntracked.number(), 14);
        assert_eq!(DropReason::Ipv6Beyond.number(), 15);
        assert_eq!(DropReason::NoUplinkAddress.number(), 16);
        assert_eq!(DropReason::TailCallFailed.number(), 17);
        assert_eq!(DropReason::NotAllowed.number(), 18);
        assert_eq!(DropReason::Untranslatable.number(), 19);
        assert_eq!(DropReason::from_number(0), None);
    }
}
