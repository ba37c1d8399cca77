//! IPv6's cases beside IPv4's: the same kinds of packet through the same
//! programs (a published port's new and established flow from outside,
//! its answer, a masqueraded flow's packet and new flow), cold only (a
//! hot loop of `CT6` entries is not built). The datapath is IPv4's
//! harness with the network's IPv6 side, the container's IPv6 address,
//! the port published over IPv6 too and the uplink's IPv6 address, in
//! [`node_ns6`]'s namespace, whose FIB routes the container's packets
//! out of its uplink `up0`.

use std::net::{Ipv6Addr, SocketAddrV6};

use weir_common::publish::{PROTO_TCP, PublishKey6, PublishTarget6};

use super::{Case, Hot, Run, case, port};
use crate::{
    packet,
    prog::{DEFAULT_FLAGS, Harness, TEST_IFINDEX},
};

const NODE6: &str = "2001:db8:1::1";
/// A client beyond the uplink's next hop.
const CLIENT6: &str = "2001:db8:9::2";
const BACKEND6: &str = "fd00:88::2";

fn sa(ip: &str, port: u16) -> SocketAddrV6 {
    SocketAddrV6::new(ip.parse::<Ipv6Addr>().expect("an address"), port, 0, 0)
}

/// Gives the harness's network, container, uplinks (`uplink`: `up0`'s
/// index, where the FIB sends the container's packets) and published
/// port their IPv6 sides, then starts a published port's flow and a
/// masqueraded one and returns their packets: the client's, the
/// container's answer, the masqueraded flow's.
pub(super) fn flows(h: &mut Harness, uplink: u32) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    h.network6("fd00:88::/64", 1, DEFAULT_FLAGS, "fd00:88::1");
    let backend6: Ipv6Addr = BACKEND6.parse().expect("an address");
    let node6: Ipv6Addr = NODE6.parse().expect("an address");
    let dp = &mut h.datapath;
    dp.set_endpoint6(TEST_IFINDEX, Some(backend6), crate::packet::MAC_CONTAINER)
        .expect("ENDPOINTS6");
    dp.set_uplinks6(&[(TEST_IFINDEX, node6), (uplink, node6)])
        .expect("UPLINKS6");
    dp.set_host_addrs6(&[(node6, TEST_IFINDEX)])
        .expect("HOST_ADDRS6");
    let key = PublishKey6::new([0; 16], 8080, PROTO_TCP);
    dp.ensure_port_stats(key).expect("PORT_STATS6");
    dp.insert_publish6(
        key,
        PublishTarget6 {
            ip: backend6.octets(),
            port: 80u16.to_be_bytes(),
            pad: [0; 2],
            network_id: 1,
        },
    )
    .expect("PUBLISH6");
    let ack_in = packet::tcp6(sa(CLIENT6, port(0)), sa(NODE6, 8080), false, Some(1));
    let dnat = h.run_tc("tc_from_uplink", &ack_in);
    assert_eq!(
        dnat.frame[38..54],
        backend6.octets(),
        "DNAT to the container"
    );
    let answer = packet::tcp6(sa(BACKEND6, 80), sa(CLIENT6, port(0)), false, Some(2));
    let ack_out = packet::tcp6(sa(BACKEND6, port(0)), sa(CLIENT6, 443), false, Some(1));
    let snat = h.run_tc("tc_to_uplink", &ack_out);
    assert_eq!(
        snat.frame[22..38],
        node6.octets(),
        "masqueraded as the node"
    );
    (ack_in, answer, ack_out)
}

/// The cases, on the packets [`flows`] started.
pub(super) fn cases<'a>(ack_in: &'a [u8], answer: &'a [u8], ack_out: &'a [u8]) -> Vec<Case<'a>> {
    vec![
        case(Run::Tc("tc_from_uplink"), "IPv6: new flow (DNAT)", |i| {
            packet::tcp6(sa(CLIENT6, port(i + 3)), sa(NODE6, 8080), true, None)
        }),
        case(
            Run::Tc("tc_from_uplink"),
            "IPv6: established (DNAT)",
            move |_| ack_in.to_vec(),
        ),
        case(
            Run::Tc("tc_from_container"),
            "IPv6: established (reverse DNAT)",
            move |_| answer.to_vec(),
        ),
        case(
            Run::Tc("tc_from_container"),
            "IPv6: established (SNAT)",
            move |_| ack_out.to_vec(),
        ),
        case(Run::Tc("tc_to_uplink"), "IPv6: new flow (SNAT)", |i| {
            packet::tcp6(sa(BACKEND6, port(i + 4)), sa(CLIENT6, 443), true, None)
        }),
        case(
            Run::Tc("tc_to_uplink"),
            "IPv6: translated on the veth (passes)",
            |_| packet::tcp6(sa(NODE6, 5555), sa(CLIENT6, 443), false, Some(2)),
        )
        .hot(Hot::Same),
    ]
}
