//! IPv6 for the `BPF_PROG_TEST_RUN` suites of NAT66, the fast paths and a
//! cluster's IPv6 (`prog_nat6.rs`, `prog_fwd6.rs`, `prog_cluster6.rs`):
//! their addresses, a [`Harness::dual_stack`] with the node's IPv6
//! address, the frames they send and what they read back.

use std::net::Ipv6Addr;

use aya::maps::HashMap;
use etherparse::{Icmpv6Type, PacketBuilder};
use weir_common::{
    ct6::{CtEntry6, CtKey6},
    network::NET_MASQUERADE,
};

use crate::{
    packet::{MAC_CONTAINER, MAC_HOST},
    prog::{DEFAULT_FLAGS, Harness, TEST_IFINDEX},
};

/// The container, in [`Harness::dual_stack`]'s network.
pub const C: &str = "fd00:89::2";
/// The node's IPv6 address, its uplink's.
pub const NODE6: &str = "2001:db8:1::1";
/// A host outside.
pub const PEER: &str = "2001:db8:9::1";
/// A cluster's pod on another node, a node, a Service address.
pub const POD_THERE: &str = "fd00:245:0:2::2";
pub const NODE_THERE: &str = "fd00:198:51:100::2";
pub const SERVICE: &str = "fd00:96::10";

/// `text`'s 16 bytes.
#[must_use]
pub fn a(text: &str) -> [u8; 16] {
    text.parse::<Ipv6Addr>().unwrap().octets()
}

/// A masquerading dual-stack network; with `uplink6`, [`NODE6`] is the
/// IPv6 masquerade address of the uplink [`TEST_IFINDEX`].
#[must_use]
pub fn harness(uplink6: bool) -> Harness {
    harness_with(uplink6, DEFAULT_FLAGS | NET_MASQUERADE)
}

/// [`harness`] with the network's `flags`.
#[must_use]
pub fn harness_with(uplink6: bool, flags: u32) -> Harness {
    let mut h = Harness::dual_stack(flags);
    if uplink6 {
        h.datapath
            .set_uplinks6(&[(TEST_IFINDEX, NODE6.parse().unwrap())])
            .unwrap();
    }
    h
}

/// A frame of `proto`'s kind from `src:sport` to `dst:dport`: a TCP SYN,
/// a UDP datagram, or (any other `proto`) an echo request whose
/// identifier is `sport`.
#[must_use]
pub fn frame6(src: &str, dst: &str, sport: u16, dport: u16, proto: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST).ipv6(a(src), a(dst), 64);
    let mut f = Vec::new();
    match proto {
        6 => b.tcp(sport, dport, 1, 64240).syn().write(&mut f, &[]),
        17 => b.udp(sport, dport).write(&mut f, b"q6"),
        _ => b.icmpv6_echo_request(sport, 1).write(&mut f, b"ping"),
    }
    .unwrap();
    f
}

/// The fields NAT rewrites (an echo's identifier as both ports), and
/// whether the L4 checksum verifies.
#[must_use]
pub fn view(f: &[u8]) -> (Ipv6Addr, Ipv6Addr, u16, u16, bool) {
    let ip = &f[14..54];
    let l4 = &f[54..];
    let src: [u8; 16] = ip[8..24].try_into().unwrap();
    let dst: [u8; 16] = ip[24..40].try_into().unwrap();
    let proto = ip[6];
    let (sport, dport) = if proto == 58 {
        let id = u16::from_be_bytes([l4[4], l4[5]]);
        (id, id)
    } else {
        (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        )
    };
    let mut sum = u32::from(proto) + u32::try_from(l4.len()).unwrap();
    for pair in ip[8..40].chunks(2).chain(l4.chunks(2)) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    (src.into(), dst.into(), sport, dport, sum == 0xffff)
}

/// Every `CT6` entry, the original directions first.
#[must_use]
pub fn ct6(h: &mut Harness) -> Vec<(CtKey6, CtEntry6)> {
    let map: HashMap<&mut aya::maps::MapData, CtKey6, CtEntry6> =
        HashMap::try_from(h.datapath.ebpf_mut().map_mut("CT6").expect("CT6")).unwrap();
    let mut all: Vec<_> = map.iter().map(Result::unwrap).collect();
    all.sort_by_key(|(_, e)| e.dir);
    all
}

/// An `ICMPv6` error of type `ty` from `src` to `dst` quoting `quote`
/// (an IPv6 packet as it was sent).
#[must_use]
pub fn icmp6_error(src: &str, dst: &str, ty: Icmpv6Type, quote: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_HOST, MAC_CONTAINER)
        .ipv6(a(src), a(dst), 64)
        .icmpv6(ty);
    let mut f = Vec::new();
    b.write(&mut f, quote).unwrap();
    f
}
