//! `BPF_PROG_TEST_RUN` on IPv6 masquerade (NAT66) and routed IPv6: a
//! container's TCP, UDP and `ICMPv6` echo flows leave `tc_to_uplink` with
//! the uplink's IPv6 address and a port of the range, both directions
//! tracked in `CT6`, the L4 checksum right (it covers the pseudo-header);
//! the answers get the container's address and port back in
//! `tc_from_uplink`; with no `UPLINKS6` entry nothing leaves
//! (`no-uplink-address`). A routed network's flows leave untouched,
//! tracked, and only their answers, their published container ports and
//! pings get in. A port published on every
//! address is reached over IPv6 (`PUBLISH6`): the client's flow translated to
//! the container's IPv6 address with the client kept, the answer leaving
//! as the node's port; not for an `--internal` network's. A cluster's
//! IPv6 is `prog_cluster6.rs`'s; the frames and views are
//! `weir_tests::prog6`'s.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{Icmpv6Type, PacketBuilder};
use weir_common::{
    ct::{DIR_ORIGINAL, DIR_REPLY, KIND_DNAT, KIND_HAIRPIN, KIND_ROUTED, KIND_SNAT},
    ct6::CtKey6,
    drop::DropReason,
    network::{NET_ICC, NET_INTERNAL, NET_ROUTED},
    publish::{PublishKey6, PublishTarget6},
    stats::PortCounters,
};
use weir_tests::{
    packet::{MAC_CONTAINER, MAC_HOST},
    prog::{Harness, TC_ACT_OK, TC_ACT_SHOT, TEST_IFINDEX, XDP_PASS, in_own_ns},
    prog6::{C, NODE6, PEER, a, ct6, frame6, harness, harness_with, icmp6_error, view},
};

#[test]
fn a_containers_ipv6_flows_leave_as_the_node_and_their_answers_come_back() {
    in_own_ns("nat6", || {
        for (proto, sport, dport) in [(6u8, 40000, 443), (17, 40001, 53), (58, 7, 7)] {
            let mut h = harness(true);
            let out = h.run_tc("tc_to_uplink", &frame6(C, PEER, sport, dport, proto));
            assert_eq!(out.verdict, TC_ACT_OK, "proto {proto}");
            let (src, dst, nat_sport, d, csum) = view(&out.frame);
            assert_eq!((src, dst), (NODE6.parse().unwrap(), PEER.parse().unwrap()));
            assert!(
                (30000..=30999).contains(&nat_sport),
                "proto {proto}: {nat_sport}"
            );
            if proto != 58 {
                assert_eq!(d, dport);
            }
            assert!(csum, "proto {proto}: the checksum after SNAT");
            let flows = ct6(&mut h);
            assert_eq!(flows.len(), 2, "proto {proto}");
            let (orig, reply) = (flows[0], flows[1]);
            assert_eq!((orig.1.dir, orig.1.kind), (DIR_ORIGINAL, KIND_SNAT));
            assert_eq!(reply.1.dir, DIR_REPLY);
            assert_eq!(orig.0.saddr, a(C));
            assert_eq!(reply.0.daddr, a(NODE6));
            assert_eq!(reply.0.dport, nat_sport.to_be_bytes());

            // The answer, to the node's port: back to the container.
            let answer = if proto == 58 {
                let b =
                    PacketBuilder::ethernet2(MAC_HOST, MAC_CONTAINER).ipv6(a(PEER), a(NODE6), 64);
                let mut f = Vec::new();
                b.icmpv6_echo_reply(nat_sport, 1)
                    .write(&mut f, b"ping")
                    .unwrap();
                f
            } else {
                let mut f = frame6(PEER, NODE6, dport, nat_sport, proto);
                if proto == 6 {
                    // A SYN-ACK, not a SYN: set ACK and fix the checksum.
                    let tcp = 54;
                    f[tcp + 13] = 0x12;
                    let old = u16::from_be_bytes([f[tcp + 16], f[tcp + 17]]);
                    let mut sum = u32::from(!old) + u32::from(!0x0002u16) + 0x0012;
                    while sum > 0xffff {
                        sum = (sum & 0xffff) + (sum >> 16);
                    }
                    f[tcp + 16..tcp + 18]
                        .copy_from_slice(&(!u16::try_from(sum).unwrap()).to_be_bytes());
                }
                f
            };
            let back = h.run_tc("tc_from_uplink", &answer);
            assert_eq!(back.verdict, TC_ACT_OK);
            let (src, dst, _, to_port, csum) = view(&back.frame);
            assert_eq!((src, dst), (PEER.parse().unwrap(), C.parse().unwrap()));
            assert_eq!(to_port, sport, "proto {proto}");
            assert!(csum, "proto {proto}: the checksum after the way back");
            assert_eq!(ct6(&mut h)[1].1.packets, 1, "the answer counted");
        }
    });
}

#[test]
fn without_an_ipv6_masquerade_address_nothing_leaves() {
    in_own_ns("nat6", || {
        let mut h = harness(false);
        let reason = DropReason::NoUplinkAddress;
        let before = h.datapath.drop_stats(reason).unwrap().packets;
        let out = h.run_tc("tc_to_uplink", &frame6(C, PEER, 40000, 443, 6));
        assert_eq!(out.verdict, TC_ACT_SHOT, "never with its private source");
        assert_eq!(h.datapath.drop_stats(reason).unwrap().packets, before + 1);
        assert!(ct6(&mut h).is_empty());
    });
}

#[test]
fn a_routed_networks_flows_leave_untouched_and_only_their_answers_get_in() {
    in_own_ns("nat6", || {
        let mut h = harness_with(true, NET_ICC | NET_ROUTED);
        let f = frame6(C, PEER, 40000, 443, 17);
        let out = h.run_tc("tc_to_uplink", &f);
        assert_eq!(out.verdict, TC_ACT_OK);
        assert_eq!(out.frame, f, "its own address and port");
        let flows = ct6(&mut h);
        assert_eq!(flows.len(), 2);
        assert!(flows.iter().all(|(_, e)| e.kind == KIND_ROUTED));
        assert_eq!(
            flows[1].0,
            CtKey6::new(
                a(PEER),
                a(C),
                443u16.to_be_bytes(),
                40000u16.to_be_bytes(),
                17
            )
        );

        let answer = frame6(PEER, C, 443, 40000, 17);
        let back = h.run_tc("tc_from_uplink", &answer);
        assert_eq!(back.verdict, TC_ACT_OK);
        assert_eq!(back.frame, answer, "untouched");
        assert_eq!(ct6(&mut h)[1].1.packets, 1, "the answer counted");

        // Anything else to the container: tc shuts it; XDP, which does
        // not look flows up, leaves a routed network's addresses to tc.
        let other = frame6(PEER, C, 443, 40001, 17);
        let before = h
            .datapath
            .drop_stats(DropReason::Unsolicited)
            .unwrap()
            .packets;
        assert_eq!(h.run_tc("tc_from_uplink", &other).verdict, TC_ACT_SHOT);
        assert_eq!(
            h.datapath
                .drop_stats(DropReason::Unsolicited)
                .unwrap()
                .packets,
            before + 1
        );
        assert_eq!(h.run_xdp("xdp_from_uplink", &other).verdict, XDP_PASS);

        // A published container port is open at the container's own
        // address, and ping: each let in and tracked as it is.
        h.datapath
            .set_open_ports6(&[(PublishKey6::new(a(C), 80, 6), 1)])
            .unwrap();
        for (what, f) in [
            ("an open port", frame6(PEER, C, 41000, 80, 6)),
            ("a ping", frame6(PEER, C, 7, 0, 58)),
        ] {
            let before = ct6(&mut h).len();
            let out = h.run_tc("tc_from_uplink", &f);
            assert_eq!(out.verdict, TC_ACT_OK, "{what}");
            assert_eq!(out.frame, f, "{what}: untouched");
            let flows = ct6(&mut h);
            assert_eq!(flows.len(), before + 2, "{what}: tracked");
            assert!(flows.iter().all(|(_, e)| e.kind == KIND_ROUTED));
        }
        let closed = frame6(PEER, C, 41000, 81, 6);
        assert_eq!(h.run_tc("tc_from_uplink", &closed).verdict, TC_ACT_SHOT);
    });
}

/// `host_port` published on every address (NODE6 the node's IPv6
/// address) to the container's `port`, over `proto`.
fn publish6(h: &mut Harness, host_port: u16, port: u16, proto: u8) {
    h.datapath
        .set_host_addrs6(&[(NODE6.parse().unwrap(), TEST_IFINDEX)])
        .unwrap();
    let target = PublishTarget6 {
        ip: a(C),
        port: port.to_be_bytes(),
        pad: [0; 2],
        network_id: 1,
    };
    let key = PublishKey6::new([0; 16], host_port, proto);
    h.datapath.ensure_port_stats(key).unwrap();
    h.datapath.insert_publish6(key, target).unwrap();
}

/// `PORT_STATS6`'s counters of publication `key`.
fn port_stats6(h: &Harness, key: PublishKey6) -> PortCounters {
    h.datapath
        .port_stats::<PublishKey6>()
        .unwrap()
        .into_iter()
        .find_map(|(k, c)| (k == key).then_some(c))
        .unwrap_or_else(|| panic!("no counters for {key:?}"))
}

#[test]
fn a_port_published_on_every_address_is_reached_over_ipv6_with_the_client_kept() {
    in_own_ns("nat6", || {
        for proto in [6u8, 17] {
            let mut h = harness(true);
            publish6(&mut h, 8080, 80, proto);
            // The client's first packet: to the container, the client kept.
            let out = h.run_tc("tc_from_uplink", &frame6(PEER, NODE6, 40000, 8080, proto));
            assert_eq!(out.verdict, TC_ACT_OK, "proto {proto}");
            let (src, dst, sport, dport, csum) = view(&out.frame);
            assert_eq!((src, dst), (PEER.parse().unwrap(), C.parse().unwrap()));
            assert_eq!((sport, dport), (40000, 80), "proto {proto}");
            assert!(csum, "proto {proto}: the checksum after DNAT");
            let flows = ct6(&mut h);
            assert_eq!(flows.len(), 2);
            assert!(flows.iter().all(|(_, e)| e.kind == KIND_DNAT));
            assert_eq!(flows[0].1.packets, 1, "the first packet counted");
            let key = PublishKey6::new([0; 16], 8080, proto);
            assert!(
                flows.iter().all(|(_, e)| e.publication == key),
                "both entries name the publication"
            );
            // The container's answer leaves the uplink as the node's port.
            let back = h.run_tc("tc_to_uplink", &frame6(C, PEER, 80, 40000, 17));
            if proto == 17 {
                assert_eq!(back.verdict, TC_ACT_OK);
                let (src, dst, sport, dport, csum) = view(&back.frame);
                assert_eq!((src, dst), (NODE6.parse().unwrap(), PEER.parse().unwrap()));
                assert_eq!((sport, dport), (8080, 40000));
                assert!(csum, "the checksum of the answer");
            }
            // Counted as the publication's (`weir stats`).
            let c = port_stats6(&h, key);
            let answers = u64::from(proto == 17);
            assert_eq!(
                (c.flows, c.packets_in, c.packets_out),
                (1, 1, answers),
                "proto {proto}"
            );
            // Another port of the container's, or an address the node
            // does not have: not published.
            let other = h.run_tc("tc_from_uplink", &frame6(PEER, C, 40000, 81, proto));
            assert_eq!(other.verdict, TC_ACT_SHOT, "unsolicited");
            let elsewhere = frame6(PEER, "2001:db8:1::99", 40000, 8080, proto);
            let out = h.run_tc("tc_from_uplink", &elsewhere);
            assert_eq!((out.verdict, out.frame), (TC_ACT_OK, elsewhere));
        }
    });
}

#[test]
fn an_internal_networks_port_is_not_reached_over_ipv6_from_outside() {
    in_own_ns("nat6", || {
        let mut h = harness_with(true, NET_ICC | NET_INTERNAL);
        publish6(&mut h, 8080, 80, 6);
        let before = h.datapath.drop_stats(DropReason::Internal).unwrap().packets;
        let out = h.run_tc("tc_from_uplink", &frame6(PEER, NODE6, 40000, 8080, 6));
        assert_eq!(out.verdict, TC_ACT_SHOT);
        assert_eq!(
            h.datapath.drop_stats(DropReason::Internal).unwrap().packets,
            before + 1
        );
        assert!(ct6(&mut h).is_empty());
    });
}

/// The quoted packet's addresses and ports (or echo identifier) of an
/// `ICMPv6` error frame.
fn quote_of(f: &[u8]) -> (Ipv6Addr, Ipv6Addr, u16, u16) {
    let q = &f[62..];
    let src: [u8; 16] = q[8..24].try_into().unwrap();
    let dst: [u8; 16] = q[24..40].try_into().unwrap();
    let l4 = &q[40..];
    let (sport, dport) = if q[6] == 58 {
        (u16::from_be_bytes([l4[4], l4[5]]), 0)
    } else {
        (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        )
    };
    (src.into(), dst.into(), sport, dport)
}

#[test]
fn icmpv6_errors_about_translated_flows_are_translated_with_their_quote() {
    in_own_ns("nat6", || {
        for proto in [6u8, 17, 58] {
            let mut h = harness(true);
            let out = h.run_tc("tc_to_uplink", &frame6(C, PEER, 40000, 443, proto));
            let (_, _, nat_port, _, _) = view(&out.frame);
            // A router on the way: the packet was too big.
            let ptb = icmp6_error(
                "2001:db8:9::fe",
                NODE6,
                Icmpv6Type::PacketTooBig { mtu: 1280 },
                &out.frame[14..],
            );
            let back = h.run_tc("tc_from_uplink", &ptb);
            assert_eq!(back.verdict, TC_ACT_OK, "proto {proto}");
            let (_, dst, _, _, csum) = view(&back.frame);
            assert_eq!(dst, C.parse::<Ipv6Addr>().unwrap(), "proto {proto}");
            assert!(csum, "proto {proto}: the ICMPv6 checksum after");
            let (qs, qd, qsport, _) = quote_of(&back.frame);
            assert_eq!((qs, qd), (C.parse().unwrap(), PEER.parse().unwrap()));
            assert_eq!(
                qsport, 40000,
                "proto {proto}: the quote's port ({nat_port} before)"
            );
            // An error quoting an untracked tuple, to the container: shut.
            let mut stray = frame6(C, PEER, 40001, 443, proto);
            stray[22..38].copy_from_slice(&a(NODE6));
            let stray = icmp6_error(
                "2001:db8:9::fe",
                C,
                Icmpv6Type::PacketTooBig { mtu: 1280 },
                &stray[14..],
            );
            assert_eq!(h.run_tc("tc_from_uplink", &stray).verdict, TC_ACT_SHOT);
        }
    });
}

#[test]
fn a_containers_icmpv6_error_about_a_published_flow_leaves_as_the_node() {
    in_own_ns("nat6", || {
        let mut h = harness(true);
        publish6(&mut h, 5353, 53, 17);
        let inside = h.run_tc("tc_from_uplink", &frame6(PEER, NODE6, 40000, 5353, 17));
        assert_eq!(view(&inside.frame).1, C.parse::<Ipv6Addr>().unwrap());
        // Nothing listens: the container says so, quoting what it got.
        let unreachable = icmp6_error(
            C,
            PEER,
            Icmpv6Type::DestinationUnreachable(etherparse::icmpv6::DestUnreachableCode::Port),
            &inside.frame[14..],
        );
        let out = h.run_tc("tc_to_uplink", &unreachable);
        assert_eq!(out.verdict, TC_ACT_OK);
        let (src, dst, _, _, csum) = view(&out.frame);
        assert_eq!((src, dst), (NODE6.parse().unwrap(), PEER.parse().unwrap()));
        assert!(csum, "the ICMPv6 checksum after");
        let (qsrc, qdst, from_port, to_port) = quote_of(&out.frame);
        assert_eq!(
            (qsrc, qdst),
            (PEER.parse().unwrap(), NODE6.parse().unwrap())
        );
        assert_eq!((from_port, to_port), (40000, 5353), "as the client sent it");
    });
}

#[test]
fn a_container_reaches_ports_published_on_the_nodes_ipv6_addresses_hairpin() {
    in_own_ns("nat6", || {
        let neighbour = "fd00:89::3";
        for (target, via_node) in [(neighbour, false), (C, true)] {
            let mut h = harness(true);
            h.container(Ipv4Addr::new(10, 89, 0, 2), 1);
            h.datapath
                .set_endpoint6(TEST_IFINDEX, Some(C.parse().unwrap()), MAC_CONTAINER)
                .unwrap();
            publish6(&mut h, 8080, 80, 6);
            if target != C {
                let t = PublishTarget6 {
                    ip: a(target),
                    port: 80u16.to_be_bytes(),
                    pad: [0; 2],
                    network_id: 1,
                };
                h.datapath
                    .insert_publish6(PublishKey6::new([0; 16], 8080, 6), t)
                    .unwrap();
            }
            let out = h.run_tc("tc_from_container", &frame6(C, NODE6, 40000, 8080, 6));
            assert_eq!(out.verdict, TC_ACT_OK, "to {target}");
            let (src, dst, sport, dport, csum) = view(&out.frame);
            let from = if via_node { NODE6 } else { C };
            assert_eq!((src, dst), (from.parse().unwrap(), target.parse().unwrap()));
            assert_eq!((sport, dport), (40000, 80));
            assert!(csum, "to {target}: the checksum");
            let flows = ct6(&mut h);
            assert_eq!(flows.len(), 2);
            assert!(flows.iter().all(|(_, e)| e.kind == KIND_HAIRPIN));
            if via_node {
                // Its own answer, to the node: back from the node's port.
                let back = h.run_tc("tc_from_container", &frame6(C, NODE6, 80, 40000, 6));
                assert_eq!(back.verdict, TC_ACT_OK);
                let (src, dst, sport, dport, csum) = view(&back.frame);
                assert_eq!((src, dst), (NODE6.parse().unwrap(), C.parse().unwrap()));
                assert_eq!((sport, dport), (8080, 40000));
                assert!(csum, "the answer's checksum");
            }
        }
    });
}

/// A TCP segment from `src:sport` to `dst:dport`: SYN-ACK (`syn` and
/// `ack`), RST (`rst`) or a plain SYN.
fn tcp6(
    src: &str,
    dst: &str,
    (sport, dport): (u16, u16),
    (syn, ack, rst): (bool, bool, bool),
) -> Vec<u8> {
    let mut t = PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST)
        .ipv6(a(src), a(dst), 64)
        .tcp(sport, dport, 1, 64240);
    if syn {
        t = t.syn();
    }
    if ack {
        t = t.ack(2);
    }
    if rst {
        t = t.rst();
    }
    let mut f = Vec::new();
    t.write(&mut f, &[]).unwrap();
    f
}

#[test]
fn an_ended_ipv6_flows_port_goes_to_the_next_connection_and_an_open_ones_does_not() {
    in_own_ns("nat6", || {
        let mut h = harness(true);
        // One port: every flow to the peer's port 80 wants it.
        h.datapath.configure((30000, 30000)).unwrap();
        let c2 = "fd00:89::3";
        let syn = |h: &mut Harness, c: &str, port: u16| {
            h.run_tc(
                "tc_to_uplink",
                &tcp6(c, PEER, (port, 80), (true, false, false)),
            )
        };
        let first = syn(&mut h, C, 40000);
        assert_eq!(view(&first.frame).2, 30000);
        let answer = tcp6(PEER, NODE6, (80, 30000), (true, true, false));
        assert_eq!(
            view(&h.run_tc("tc_from_uplink", &answer).frame).1,
            C.parse::<Ipv6Addr>().unwrap()
        );
        // Open: another flow may not take the port.
        assert_eq!(syn(&mut h, c2, 40001).verdict, TC_ACT_SHOT);
        // The first flow ends with a reset; its port is free for a SYN.
        let rst = tcp6(C, PEER, (40000, 80), (false, true, true));
        assert_eq!(h.run_tc("tc_to_uplink", &rst).verdict, TC_ACT_OK);
        let out = syn(&mut h, c2, 40001);
        assert_eq!(out.verdict, TC_ACT_OK);
        let (src, _, sport, _, csum) = view(&out.frame);
        assert_eq!((src, sport, csum), (NODE6.parse().unwrap(), 30000, true));
        // Only the new flow's entries remain, and the port's answers
        // reach the new flow's container.
        let flows = ct6(&mut h);
        assert_eq!(flows.len(), 2, "{flows:?}");
        assert!(
            flows
                .iter()
                .all(|(k, _)| k.saddr != a(C) && k.daddr != a(C))
        );
        assert_eq!(
            view(&h.run_tc("tc_from_uplink", &answer).frame).1,
            c2.parse::<Ipv6Addr>().unwrap()
        );
        let dropped = h.datapath.drop_stats(DropReason::SnatExhausted).unwrap();
        assert_eq!(dropped.packets, 1);
    });
}

#[test]
fn an_ipv6_syn_that_opens_a_tuple_again_starts_its_flags_over() {
    in_own_ns("nat6", || {
        let mut h = harness(true);
        let syn = tcp6(C, PEER, (40000, 80), (true, false, false));
        let port = view(&h.run_tc("tc_to_uplink", &syn).frame).2;
        let answer = tcp6(PEER, NODE6, (80, port), (true, true, false));
        assert_eq!(h.run_tc("tc_from_uplink", &answer).verdict, TC_ACT_OK);
        let rst = tcp6(C, PEER, (40000, 80), (false, true, true));
        assert_eq!(h.run_tc("tc_to_uplink", &rst).verdict, TC_ACT_OK);
        // The same tuple again: the same mapping, nothing of the ended
        // flow's flags left to call it closing.
        assert_eq!(view(&h.run_tc("tc_to_uplink", &syn).frame).2, port);
        let flows = ct6(&mut h);
        assert_eq!(flows.len(), 2);
        for (_, e) in &flows {
            let want = if e.dir == DIR_ORIGINAL { 0x02 } else { 0 };
            assert_eq!(e.tcp_flags, want, "{e:?}");
        }
    });
}
