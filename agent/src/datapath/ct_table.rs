//! The two conntrack tables, one per family (`CT4`, `CT6`), behind one
//! set of operations: their keys and entries hold the same fields at
//! different address widths.

use std::{
    fmt::Debug,
    hash::Hash,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
};

use weir_common::{
    ct::{CtEntry, CtKey},
    ct6::{CtEntry6, CtKey6},
};

use super::map_names;

/// A conntrack table's key type, and through it the table.
pub trait CtTable: aya::Pod + Copy + Eq + Hash + Debug {
    type Entry: CtRecord;
    /// The map's name.
    const MAP: &'static str;
    fn proto(&self) -> u8;
    /// The key the answers of a packet leaving as `entry`'s tuple arrive with.
    fn reply_of(entry: &Self::Entry, proto: u8) -> Self;
    fn src(&self) -> SocketAddr;
    fn dst(&self) -> SocketAddr;
}

/// One direction's entry, of either table.
pub trait CtRecord: aya::Pod + Copy + Default + Debug + Eq {
    fn dir(&self) -> u8;
    fn kind(&self) -> u8;
    fn tcp_flags(&self) -> u8;
    fn created_ns(&self) -> u64;
    fn last_seen_ns(&self) -> u64;
    fn packets(&self) -> u64;
    fn bytes(&self) -> u64;
    /// The tuple the packet leaves with.
    fn to_src(&self) -> SocketAddr;
    fn to_dst(&self) -> SocketAddr;
    /// Whether `now` is this entry as it was, unused since: the same flow
    /// (created at the same time) with no packet more.
    fn same_use(&self, now: &Self) -> bool {
        self.created_ns() == now.created_ns()
            && self.last_seen_ns() == now.last_seen_ns()
            && self.packets() == now.packets()
    }
}

/// One direction of a tracked flow, as read from its table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracked<K: CtTable> {
    pub key: K,
    pub entry: K::Entry,
}

/// An IPv4 flow's direction (`CT4`).
pub type CtFlow = Tracked<CtKey>;
/// An IPv6 flow's direction (`CT6`).
pub type CtFlow6 = Tracked<CtKey6>;

fn v4(ip: [u8; 4], port: [u8; 2]) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(ip), u16::from_be_bytes(port)))
}

fn v6(ip: [u8; 16], port: [u8; 2]) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::from(ip), u16::from_be_bytes(port)))
}

macro_rules! ct_table {
    ($key:ty, $entry:ty, $map:expr, $sock:ident) => {
        impl CtTable for $key {
            type Entry = $entry;
            const MAP: &'static str = $map;
            fn proto(&self) -> u8 {
                self.proto
            }
            fn reply_of(entry: &$entry, proto: u8) -> Self {
                <$key>::reply_of(entry, proto)
            }
            fn src(&self) -> SocketAddr {
                $sock(self.saddr, self.sport)
            }
            fn dst(&self) -> SocketAddr {
                $sock(self.daddr, self.dport)
            }
        }

        impl CtRecord for $entry {
            fn dir(&self) -> u8 {
                self.dir
            }
            fn kind(&self) -> u8 {
                self.kind
            }
            fn tcp_flags(&self) -> u8 {
                self.tcp_flags
            }
            fn created_ns(&self) -> u64 {
                self.created_ns
            }
            fn last_seen_ns(&self) -> u64 {
                self.last_seen_ns
            }
            fn packets(&self) -> u64 {
                self.packets
            }
            fn bytes(&self) -> u64 {
                self.bytes
            }
            fn to_src(&self) -> SocketAddr {
                $sock(self.nat_saddr, self.nat_sport)
            }
            fn to_dst(&self) -> SocketAddr {
                $sock(self.nat_daddr, self.nat_dport)
            }
        }
    };
}

ct_table!(CtKey, CtEntry, map_names::CT4, v4);
ct_table!(CtKey6, CtEntry6, map_names::CT6, v6);
