//! Per-CPU counters: `HOOK_STATS` (packets seen by each hook),
//! `DROP_STATS` (packets dropped, by [`crate::drop::DropReason`]),
//! `SNAT_STATS` (masquerade, per network) and `PORT_STATS` (per
//! publication).

/// Packets and bytes. The value type of every per-CPU counter map; the agent
/// sums it over the CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

impl Counter {
    /// Adds another counter (used to sum per-CPU values).
    #[must_use]
    pub const fn plus(self, other: Counter) -> Counter {
        Counter {
            packets: self.packets.wrapping_add(other.packets),
            bytes: self.bytes.wrapping_add(other.bytes),
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: `Counter` is `repr(C)`, two `u64`s, no padding, every bit pattern valid.
unsafe impl aya::Pod for Counter {}

/// Masquerade counters of one network (`SNAT_STATS`, per CPU, indexed by
/// network id).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatCounters {
    /// Flows masqueraded (each allocated a port).
    pub flows: u64,
    /// Packets and bytes of masqueraded flows, both directions.
    pub packets: u64,
    pub bytes: u64,
    /// Port probes that collided with a tuple in use.
    pub retries: u64,
    /// New flows dropped because every probe collided.
    pub exhausted: u64,
}

impl NatCounters {
    /// Adds another CPU's counters.
    #[must_use]
    pub const fn plus(self, o: NatCounters) -> NatCounters {
        NatCounters {
            flows: self.flows.wrapping_add(o.flows),
            packets: self.packets.wrapping_add(o.packets),
            bytes: self.bytes.wrapping_add(o.bytes),
            retries: self.retries.wrapping_add(o.retries),
            exhausted: self.exhausted.wrapping_add(o.exhausted),
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), five `u64`s, no padding, every bit pattern valid.
unsafe impl aya::Pod for NatCounters {}

/// Counters of one publication (`PORT_STATS`, a per-CPU hash keyed by its
/// `PublishKey`; the agent makes the entry when it publishes). "In" is the
/// direction that opened the flow (towards the container), "out" its
/// answers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Flows opened through the port: from outside, by hairpin, and the
    /// node's own connections (socket hooks).
    pub flows: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
}

impl PortCounters {
    /// Adds another CPU's counters.
    #[must_use]
    pub const fn plus(self, o: PortCounters) -> PortCounters {
        PortCounters {
            flows: self.flows.wrapping_add(o.flows),
            packets_in: self.packets_in.wrapping_add(o.packets_in),
            bytes_in: self.bytes_in.wrapping_add(o.bytes_in),
            packets_out: self.packets_out.wrapping_add(o.packets_out),
            bytes_out: self.bytes_out.wrapping_add(o.bytes_out),
        }
    }
}

#[cfg(feature = "user")]
// SAFETY: repr(C), five `u64`s, no padding, every bit pattern valid.
unsafe impl aya::Pod for PortCounters {}

/// The attach points, as indexes into `HOOK_STATS`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// tcx ingress on the host side of a container veth.
    FromContainer = 0,
    /// tcx ingress on an uplink.
    FromUplink = 1,
    /// tcx egress on an uplink.
    ToUplink = 2,
    /// tcx ingress on a bridge an engine made (Docker's).
    FromBridge = 3,
    /// XDP on an uplink, before tc.
    XdpFromUplink = 4,
}

impl Hook {
    /// Every hook, in index order.
    pub const ALL: &'static [Hook] = &[
        Hook::FromContainer,
        Hook::FromUplink,
        Hook::ToUplink,
        Hook::FromBridge,
        Hook::XdpFromUplink,
    ];

    /// The hooks whose programs are tc classifiers.
    pub const TC: &'static [Hook] = &[
        Hook::FromContainer,
        Hook::FromUplink,
        Hook::ToUplink,
        Hook::FromBridge,
    ];

    /// The programs no hook runs directly: `TAIL_CALLS`' entries, by
    /// index ([`TAIL_FROM_CONTAINER6`], [`TAIL_TRACE`], [`TAIL_POD_FLOW`]).
    pub const TAIL_PROGRAMS: &'static [&'static str] =
        &["tc_from_container6", "tc_trace", "tc_pod_flow"];

    /// Size of the `HOOK_STATS` array.
    pub const MAP_SIZE: u32 = 8;

    /// `HOOK_STATS`' last slot is no hook's: the drop events `EVENTS` had
    /// no room for (its packets; the drops themselves are counted in
    /// `DROP_STATS` all the same).
    pub const EVENTS_LOST: u32 = Self::MAP_SIZE - 1;

    #[must_use]
    pub const fn index(self) -> u32 {
        self as u32
    }

    /// The name of the eBPF program that runs at this hook.
    #[must_use]
    pub const fn program(self) -> &'static str {
        match self {
            Hook::FromContainer => "tc_from_container",
            Hook::FromUplink => "tc_from_uplink",
            Hook::ToUplink => "tc_to_uplink",
            Hook::FromBridge => "tc_from_bridge",
            Hook::XdpFromUplink => "xdp_from_uplink",
        }
    }
}

/// `TAIL_CALLS` index of `tc_from_container6`, where `tc_from_container`
/// hands every IPv6 frame (a program of its own: a stack of its own).
pub const TAIL_FROM_CONTAINER6: u32 = 0;
/// `TAIL_CALLS`' entry of `tc_trace`, which a tc hook hands a traced
/// packet to as it leaves (`weir agent --trace`).
pub const TAIL_TRACE: u32 = 1;
/// `TAIL_CALLS`' entry of `tc_pod_flow`, where `tc_from_container` hands
/// a pod's SYN to a pod on another node (a program of its own: a stack
/// of its own; without it the SYN goes to the stack, as before it was).
pub const TAIL_POD_FLOW: u32 = 2;
/// Capacity of `TAIL_CALLS`.
pub const MAX_TAIL_CALLS: u32 = 4;

#[cfg(test)]
mod tests {
    use super::{Counter, Hook};

    #[test]
    fn counters_add_and_wrap() {
        let a = Counter {
            packets: 2,
            bytes: 100,
        };
        let b = Counter {
            packets: 3,
            bytes: u64::MAX,
        };
        assert_eq!(
            a.plus(b),
            Counter {
                packets: 5,
                bytes: 99
            }
        );
    }

    #[test]
    fn hook_indexes_fit_the_map() {
        for h in Hook::ALL {
            assert!(h.index() < Hook::MAP_SIZE);
        }
    }
}
