//! `BPF_PROG_TEST_RUN` on the IPv6 rules: from a container
//! (`tc_from_container`: its own, link-local and unspecified sources,
//! neighbour advertisements, destinations inside its network, in another,
//! another's gateway, beyond, and beyond an `--internal` one) and from
//! outside (`tc_from_uplink` and `xdp_from_uplink`:
//! bogons, unsolicited, the node's own), each verdict counted under its
//! reason and every passed frame untouched. IPv6 reaches those rules by
//! a tail call (`tc_from_container6`): without it, nothing IPv6 passes.
//! With `--icc=false` an IPv6 frame goes to the bridge's MAC and the
//! gateway's address alone (no neighbour, not even through the node); an
//! IPv6-only network's container (standing in the IPv4 maps at its
//! network's `no_ipv4` address) speaks IPv6 and no IPv4.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{Icmpv6Type, PacketBuilder};
use weir::datapath::no_ipv4;
use weir_common::{
    drop::DropReason,
    network::{NET_ICC, NET_INTERNAL},
};
use weir_tests::{
    packet::{MAC_CONTAINER, MAC_HOST},
    prog::{
        DEFAULT_FLAGS, Harness, TC_ACT_OK, TC_ACT_SHOT, TEST_IFINDEX, XDP_DROP, XDP_PASS, net_info,
    },
};

const OWN: &str = "fd00:89::2";
const NEIGHBOUR: &str = "fd00:89::3";
const GATEWAY: &str = "fd00:89::1";
const OTHER_NET: &str = "fd00:99::2";
const OUTSIDE: &str = "2001:db8:1::2";
const LINK_LOCAL: &str = "fe80::42:aff:fe59:2";

fn a(text: &str) -> [u8; 16] {
    text.parse::<Ipv6Addr>().unwrap().octets()
}

fn harness() -> Harness {
    let mut h = Harness::load();
    h.network(
        Ipv4Addr::new(10, 89, 0, 0),
        24,
        net_info(1, Ipv4Addr::new(10, 89, 0, 1), DEFAULT_FLAGS),
    );
    h.network(
        Ipv4Addr::new(10, 99, 0, 0),
        24,
        net_info(2, Ipv4Addr::new(10, 99, 0, 1), DEFAULT_FLAGS),
    );
    h.network6("fd00:89::/64", 1, DEFAULT_FLAGS, GATEWAY);
    h.network6("fd00:99::/64", 2, DEFAULT_FLAGS, "fd00:99::1");
    h.container(Ipv4Addr::new(10, 89, 0, 2), 1);
    h.datapath
        .set_endpoint6(TEST_IFINDEX, Some(OWN.parse().unwrap()), MAC_CONTAINER)
        .unwrap();
    h
}

/// A UDP datagram from the container's MAC to the bridge's.
fn udp6(src: &str, dst: &str) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST)
        .ipv6(a(src), a(dst), 64)
        .udp(5000, 53);
    let mut f = Vec::new();
    b.write(&mut f, b"q").unwrap();
    f
}

/// A neighbour solicitation from `src` for `target`, to its
/// solicited-node multicast group's MAC.
fn ns(src: &str, target: &str) -> Vec<u8> {
    let t = a(target);
    let group = format!("ff02::1:ff{:02x}:{:02x}{:02x}", t[13], t[14], t[15]);
    let b = PacketBuilder::ethernet2(MAC_CONTAINER, [0x33, 0x33, 0xff, t[13], t[14], t[15]])
        .ipv6(a(src), a(&group), 255)
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: 135,
            code_u8: 0,
            bytes5to8: [0; 4],
        });
    let mut f = Vec::new();
    b.write(&mut f, &t).unwrap();
    f
}

/// A neighbour advertisement from `src` for `target`.
fn na(src: &str, target: &str) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST)
        .ipv6(a(src), a("ff02::1"), 255)
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: 136,
            code_u8: 0,
            bytes5to8: [0x20, 0, 0, 0],
        });
    let mut f = Vec::new();
    b.write(&mut f, &a(target)).unwrap();
    f
}

#[test]
fn a_container_speaks_ipv6_for_itself_and_only_inside_its_network() {
    let mut h = harness();
    let cases = [
        ("its own address to a neighbour", udp6(OWN, NEIGHBOUR), None),
        ("to its gateway", udp6(OWN, GATEWAY), None),
        ("link-local", udp6(LINK_LOCAL, "fe80::1"), None),
        (
            "unspecified (DAD) to multicast",
            udp6("::", "ff02::1:ff00:2"),
            None,
        ),
        ("to all nodes", udp6(OWN, "ff02::1"), None),
        ("an advertisement of its own", na(OWN, OWN), None),
        (
            "an advertisement of a link-local",
            na(LINK_LOCAL, LINK_LOCAL),
            None,
        ),
        (
            "a neighbour's address as source",
            udp6(NEIGHBOUR, GATEWAY),
            Some(DropReason::SpoofedIp),
        ),
        (
            "the gateway's address as source",
            udp6(GATEWAY, NEIGHBOUR),
            Some(DropReason::SpoofedIp),
        ),
        (
            "an advertisement of the gateway's address",
            na(LINK_LOCAL, GATEWAY),
            Some(DropReason::SpoofedIp),
        ),
        (
            "to another network's container",
            udp6(OWN, OTHER_NET),
            Some(DropReason::Isolation),
        ),
        (
            "beyond its network (to be masqueraded)",
            udp6(OWN, OUTSIDE),
            None,
        ),
        (
            "to another network's gateway (the node)",
            udp6(OWN, "fd00:99::1"),
            None,
        ),
    ];
    for (what, frame, reason) in &cases {
        let before = reason.map(|r| h.datapath.drop_stats(r).unwrap().packets);
        let out = h.run_tc("tc_from_container", frame);
        match reason {
            None => {
                assert_eq!(out.verdict, TC_ACT_OK, "{what}");
                assert_eq!(&out.frame, frame, "{what}: untouched");
            }
            Some(r) => {
                assert_eq!(out.verdict, TC_ACT_SHOT, "{what}");
                assert_eq!(
                    h.datapath.drop_stats(*r).unwrap().packets,
                    before.unwrap() + 1,
                    "{what}: counted as {r:?}"
                );
            }
        }
    }
    // Each drop told with its IPv6 addresses, next header and ports.
    let events = h.events6();
    let told: Vec<_> = events.iter().map(|e| e.event.reason).collect();
    let want: Vec<_> = cases
        .iter()
        .filter_map(|(_, _, r)| r.map(DropReason::number))
        .collect();
    assert_eq!(told, want);
    let isolated = events.last().unwrap();
    assert_eq!(
        (
            isolated.saddr,
            isolated.daddr,
            isolated.event.proto,
            u16::from_be_bytes(isolated.event.sport),
            u16::from_be_bytes(isolated.event.dport),
            isolated.event.ethertype,
        ),
        (a(OWN), a(OTHER_NET), 17, 5000, 53, [0x86, 0xdd])
    );
}

#[test]
fn an_internal_networks_container_speaks_ipv6_only_inside() {
    let mut h = harness();
    h.network6("fd00:89::/64", 1, NET_ICC | NET_INTERNAL, GATEWAY);
    for (what, dst, reason) in [
        ("a neighbour", NEIGHBOUR, None),
        ("its gateway", GATEWAY, None),
        ("beyond", OUTSIDE, Some(DropReason::Internal)),
        (
            "another network's gateway",
            "fd00:99::1",
            Some(DropReason::Internal),
        ),
    ] {
        let count = |h: &Harness| h.datapath.drop_stats(DropReason::Internal).unwrap().packets;
        let before = count(&h);
        let out = h.run_tc("tc_from_container", &udp6(OWN, dst));
        let want = if reason.is_some() {
            TC_ACT_SHOT
        } else {
            TC_ACT_OK
        };
        assert_eq!(out.verdict, want, "{what}");
        assert_eq!(count(&h), before + u64::from(reason.is_some()), "{what}");
    }
}

#[test]
fn a_container_without_an_ipv6_address_has_only_link_local() {
    let mut h = harness();
    h.datapath
        .set_endpoint6(TEST_IFINDEX, None, MAC_CONTAINER)
        .unwrap();
    let out = h.run_tc("tc_from_container", &udp6(LINK_LOCAL, "fe80::1"));
    assert_eq!(out.verdict, TC_ACT_OK);
    let out = h.run_tc("tc_from_container", &udp6(OWN, NEIGHBOUR));
    assert_eq!(out.verdict, TC_ACT_SHOT, "an address the agent never gave");
}

#[test]
fn nothing_unsolicited_comes_in_over_ipv6_at_tc_or_xdp() {
    let mut h = harness();
    let cases = [
        (
            "to a container",
            udp6(OUTSIDE, OWN),
            Some(DropReason::Unsolicited),
        ),
        (
            "loopback source",
            udp6("::1", GATEWAY),
            Some(DropReason::Bogon),
        ),
        (
            "loopback destination",
            udp6(OUTSIDE, "::1"),
            Some(DropReason::Bogon),
        ),
        (
            "a container prefix as source",
            udp6(NEIGHBOUR, "2001:db8:1::1"),
            Some(DropReason::Bogon),
        ),
        ("to the node", udp6(OUTSIDE, "2001:db8:1::1"), None),
        ("to a gateway (the node's)", udp6(OUTSIDE, GATEWAY), None),
        ("link-local", udp6("fe80::1", "fe80::2"), None),
    ];
    for (what, frame, reason) in &cases {
        for xdp in [false, true] {
            let before = reason.map(|r| h.datapath.drop_stats(r).unwrap().packets);
            let (verdict, out) = if xdp {
                let o = h.run_xdp("xdp_from_uplink", frame);
                (o.verdict, o.frame)
            } else {
                let o = h.run_tc("tc_from_uplink", frame);
                (o.verdict, o.frame)
            };
            let hook = if xdp { "XDP" } else { "tc" };
            match reason {
                None => {
                    let pass = if xdp { XDP_PASS } else { TC_ACT_OK };
                    assert_eq!(verdict, pass, "{hook}: {what}");
                    assert_eq!(&out, frame, "{hook}: {what}: untouched");
                }
                Some(r) => {
                    let drop = if xdp { XDP_DROP } else { TC_ACT_SHOT };
                    assert_eq!(verdict, drop, "{hook}: {what}");
                    assert_eq!(
                        h.datapath.drop_stats(*r).unwrap().packets,
                        before.unwrap() + 1,
                        "{hook}: {what}: counted as {r:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn without_its_ipv6_half_the_container_hook_lets_no_ipv6_through() {
    let mut h = harness();
    let mut tails: aya::maps::ProgramArray<&mut aya::maps::MapData> = h
        .datapath
        .ebpf_mut()
        .map_mut("TAIL_CALLS")
        .expect("TAIL_CALLS")
        .try_into()
        .unwrap();
    tails
        .clear_index(&weir_common::stats::TAIL_FROM_CONTAINER6)
        .unwrap();
    let reason = DropReason::TailCallFailed;
    let before = h.datapath.drop_stats(reason).unwrap().packets;
    let out = h.run_tc("tc_from_container", &udp6(OWN, NEIGHBOUR));
    assert_eq!(out.verdict, TC_ACT_SHOT, "fail closed");
    assert_eq!(h.datapath.drop_stats(reason).unwrap().packets, before + 1);
}

/// `frame` sent to MAC `to` instead of the bridge's.
fn to_mac(mut frame: Vec<u8>, to: [u8; 6]) -> Vec<u8> {
    frame[..6].copy_from_slice(&to);
    frame
}

#[test]
fn with_icc_off_an_ipv6_frame_reaches_the_gateway_alone() {
    let mut h = harness();
    h.network(
        Ipv4Addr::new(10, 89, 0, 0),
        24,
        net_info(1, Ipv4Addr::new(10, 89, 0, 1), DEFAULT_FLAGS & !NET_ICC),
    );
    h.network6("fd00:89::/64", 1, DEFAULT_FLAGS & !NET_ICC, GATEWAY);
    let neighbour_mac = [0x02, 0x42, 0x0a, 0x59, 0, 3];
    let before = h.datapath.drop_stats(DropReason::Icc).unwrap().packets;
    for (what, frame, ok) in [
        ("to the gateway", udp6(OWN, GATEWAY), true),
        (
            "to a neighbour, through the node",
            udp6(OWN, NEIGHBOUR),
            false,
        ),
        (
            "to a neighbour's MAC",
            to_mac(udp6(OWN, NEIGHBOUR), neighbour_mac),
            false,
        ),
        (
            "link-local, to a neighbour's MAC",
            to_mac(udp6(LINK_LOCAL, "fe80::42:aff:fe59:3"), neighbour_mac),
            false,
        ),
        ("asking for the gateway's MAC", ns(OWN, GATEWAY), true),
        (
            "asking for the gateway's MAC, link-local",
            ns(LINK_LOCAL, GATEWAY),
            true,
        ),
        ("asking for a neighbour's MAC", ns(OWN, NEIGHBOUR), false),
        (
            "UDP to all nodes",
            to_mac(udp6(OWN, "ff02::1"), [0x33, 0x33, 0, 0, 0, 1]),
            false,
        ),
    ] {
        let out = h.run_tc("tc_from_container", &frame);
        let want = if ok { TC_ACT_OK } else { TC_ACT_SHOT };
        assert_eq!(out.verdict, want, "{what}");
    }
    assert_eq!(
        h.datapath.drop_stats(DropReason::Icc).unwrap().packets,
        before + 5
    );
}

#[test]
fn an_ipv6_only_networks_container_speaks_ipv6_and_no_ipv4() {
    let mut h = Harness::load();
    let none = no_ipv4(3);
    // As the agent enters an IPv6-only network: internal on IPv4.
    h.network(none, 32, net_info(3, none, NET_ICC | NET_INTERNAL));
    h.network6("fd00:8c::/64", 3, DEFAULT_FLAGS, "fd00:8c::1");
    h.datapath
        .insert_endpoint(TEST_IFINDEX, None, MAC_CONTAINER, 3)
        .unwrap();
    h.datapath
        .set_endpoint6(
            TEST_IFINDEX,
            Some("fd00:8c::2".parse().unwrap()),
            MAC_CONTAINER,
        )
        .unwrap();
    assert!(
        h.datapath.endpoint_ifindex(none).unwrap().is_none(),
        "nothing in EP_BY_IP4"
    );
    for (what, frame) in [
        ("to its gateway", udp6("fd00:8c::2", "fd00:8c::1")),
        ("to a neighbour", udp6("fd00:8c::2", "fd00:8c::3")),
        ("beyond (NAT66)", udp6("fd00:8c::2", OUTSIDE)),
    ] {
        let out = h.run_tc("tc_from_container", &frame);
        assert_eq!(out.verdict, TC_ACT_OK, "{what}");
    }
    let udp4 = |src: Ipv4Addr| {
        let b = PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST)
            .ipv4(src.octets(), [203, 0, 113, 9], 64)
            .udp(5000, 53);
        let mut f = Vec::new();
        b.write(&mut f, b"q").unwrap();
        f
    };
    for (what, src, reason) in [
        (
            "an IPv4 address of its making",
            Ipv4Addr::new(10, 99, 0, 5),
            DropReason::SpoofedIp,
        ),
        ("its stand-in address", none, DropReason::Internal),
    ] {
        let before = h.datapath.drop_stats(reason).unwrap().packets;
        let out = h.run_tc("tc_from_container", &udp4(src));
        assert_eq!(out.verdict, TC_ACT_SHOT, "{what}");
        assert_eq!(
            h.datapath.drop_stats(reason).unwrap().packets,
            before + 1,
            "{what}: {reason:?}"
        );
    }
}
