//! The networks, frames and checks of the isolation suites
//! (`prog_policy.rs`: what a container may reach; `prog_outside.rs`: what
//! may come in from outside and leave untranslated), on
//! [`Harness`]: five networks, one of each kind, and the node's address.

use std::net::{Ipv4Addr, SocketAddrV4};

use weir_common::{
    drop::DropReason,
    network::{NET_ICC, NET_INTERNAL, NET_ROUTED},
    publish::{PROTO_TCP, PublishKey, PublishTarget},
};

use crate::{
    packet::{self, MAC_CONTAINER},
    prog::{DEFAULT_FLAGS, Harness, Outcome, TC_ACT_OK, TC_ACT_SHOT, net_info},
};

/// The programs the suites run.
pub const CONTAINER: &str = "tc_from_container";
pub const UPLINK: &str = "tc_from_uplink";
pub const EGRESS: &str = "tc_to_uplink";
/// `TC_ACT_REDIRECT`: the fast path sent the packet on itself.
pub const TC_ACT_REDIRECT: i32 = 7;

/// The node's address and a host outside.
pub const NODE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const EXT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);

/// The networks of every test: (subnet, id, flags). Gateways are `.0.1`.
pub const FRONT: (Ipv4Addr, u32, u32) = (Ipv4Addr::new(10, 88, 0, 0), 1, DEFAULT_FLAGS);
pub const BACK: (Ipv4Addr, u32, u32) = (Ipv4Addr::new(10, 99, 0, 0), 2, DEFAULT_FLAGS);
pub const QUIET: (Ipv4Addr, u32, u32) = (Ipv4Addr::new(10, 77, 0, 0), 3, DEFAULT_FLAGS & !NET_ICC);
pub const VAULT: (Ipv4Addr, u32, u32) = (Ipv4Addr::new(10, 66, 0, 0), 4, NET_ICC | NET_INTERNAL);
pub const ROUTED: (Ipv4Addr, u32, u32) = (Ipv4Addr::new(10, 55, 0, 0), 5, NET_ICC | NET_ROUTED);

/// Address `.0.n` of a network.
#[must_use]
pub fn at(net: (Ipv4Addr, u32, u32), n: u8) -> Ipv4Addr {
    let [a, b, ..] = net.0.octets();
    Ipv4Addr::new(a, b, 0, n)
}

#[must_use]
pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// A fresh datapath with the five networks and the node's address.
#[must_use]
pub fn harness() -> Harness {
    let mut h = Harness::load();
    for net in [FRONT, BACK, QUIET, VAULT, ROUTED] {
        h.network(net.0, 16, net_info(net.1, at(net, 1), net.2));
    }
    h.datapath.set_host_addrs(&[(NODE, 2)]).unwrap();
    h
}

/// Publishes `NODE:port/tcp` to `backend:80` of network `net`.
pub fn publish(h: &mut Harness, port: u16, backend: Ipv4Addr, net: (Ipv4Addr, u32, u32)) {
    publish_on(h, NODE, port, backend, net);
}

/// Runs `program` on each frame and checks each verdict: `None` for a
/// pass (frame untouched), `Some(reason)` for a drop counted under it.
pub fn expect(h: &mut Harness, program: &str, cases: &[(&str, Vec<u8>, Option<DropReason>)]) {
    for (what, frame, verdict) in cases {
        let before = verdict.map(|r| h.datapath.drop_stats(r).unwrap().packets);
        let out: Outcome = h.run_tc(program, frame);
        match verdict {
            None => {
                assert_eq!(out.verdict, TC_ACT_OK, "{what}: should pass");
                assert_eq!(&out.frame, frame, "{what}: untouched");
            }
            Some(reason) => {
                assert_eq!(out.verdict, TC_ACT_SHOT, "{what}: should be dropped");
                let after = h.datapath.drop_stats(*reason).unwrap().packets;
                assert_eq!(after, before.unwrap() + 1, "{what}: counted as {reason:?}");
            }
        }
    }
}

/// A frame with its Ethernet source or destination MAC replaced.
#[must_use]
pub fn with_macs(mut frame: Vec<u8>, dst: Option<[u8; 6]>, src: Option<[u8; 6]>) -> Vec<u8> {
    if let Some(d) = dst {
        frame[..6].copy_from_slice(&d);
    }
    if let Some(s) = src {
        frame[6..12].copy_from_slice(&s);
    }
    frame
}

/// An IPv4 packet of protocol 47 (GRE), neither TCP, UDP nor ICMP.
#[must_use]
pub fn gre4(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut f = packet::udp4(sa(src, 1), sa(dst, 1), b"gre");
    f[14 + 9] = 47;
    f
}

/// A non-IP frame (the local experimental ethertype) to `dst`.
#[must_use]
pub fn raw_l2(dst: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&MAC_CONTAINER);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend_from_slice(&[0; 46]);
    f
}

/// A MAC no endpoint has.
pub const OTHER_MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0x58, 0x00, 0x03];

/// Publishes `host:port/tcp` to `backend:80`.
pub fn publish_on(
    h: &mut Harness,
    host: Ipv4Addr,
    port: u16,
    backend: Ipv4Addr,
    net: (Ipv4Addr, u32, u32),
) {
    h.datapath
        .insert_publish(
            PublishKey::new(host.octets(), port, PROTO_TCP),
            PublishTarget {
                ip: backend.octets(),
                port: 80u16.to_be_bytes(),
                pad: [0; 2],
                ifindex: 9,
                network_id: net.1,
            },
        )
        .unwrap();
}
