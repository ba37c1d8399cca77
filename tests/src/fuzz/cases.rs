//! The valid frames the fuzzer starts from: for the endpoint whose turn it
//! is, every kind of flow the maps hold at every hook that meets it, the
//! new ones and the answers of flows seeded first.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};

use etherparse::PacketBuilder;

use super::world::{
    ALLOW_LISTED, C1, C2, ENDPOINTS, FRIEND, NETS, NO_ICC, NODE, NODE6, PEER, PEER6, PUBLISHED6,
    ROUTED, ROUTED_OPEN, STRANGER, World,
};
use crate::packet::{self, MAC_CONTAINER, MAC_HOST};

/// A hook, or two in the order a frame meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `tc_from_container` (and its IPv6 half by tail call).
    FromContainer,
    /// `tc_to_uplink`.
    ToUplink,
    /// `xdp_from_uplink`, then `tc_from_uplink` for what XDP passes.
    FromUplink,
    /// `tc_from_uplink` alone (what XDP never saw).
    TcFromUplink,
    /// `tc_from_bridge`.
    FromBridge,
}

/// A frame and the hook it is for.
pub struct Case {
    pub hook: Hook,
    pub frame: Vec<u8>,
}

/// What the seeded flows got: the node ports (or identifiers) their
/// answers come back to.
#[derive(Default)]
pub struct Seeds {
    pub tcp: Option<u16>,
    pub udp: Option<u16>,
    pub icmp: Option<u16>,
    pub tcp6: Option<u16>,
}

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// `frame` as sent from `mac` (its ARP sender too).
fn from_mac(mut frame: Vec<u8>, mac: [u8; 6]) -> Vec<u8> {
    frame[6..12].copy_from_slice(&mac);
    if frame[12..14] == [0x08, 0x06] {
        frame[22..28].copy_from_slice(&mac);
    }
    frame
}

/// An IPv6 TCP SYN (`ack`: a plain ACK), UDP or `ICMPv6` echo request.
#[must_use]
pub fn frame6(src: Ipv6Addr, dst: Ipv6Addr, ports: (u16, u16), proto: u8, ack: bool) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST).ipv6(src.octets(), dst.octets(), 64);
    let mut f = Vec::new();
    match proto {
        6 if ack => b.tcp(ports.0, ports.1, 9, 64240).ack(2).write(&mut f, &[]),
        6 => b.tcp(ports.0, ports.1, 1, 64240).syn().write(&mut f, &[]),
        17 => b.udp(ports.0, ports.1).write(&mut f, b"q6"),
        _ => b.icmpv6_echo_request(ports.0, 1).write(&mut f, b"ping"),
    }
    .expect("an IPv6 frame");
    f
}

fn gateway(net: usize) -> Ipv4Addr {
    let o = NETS[net].subnet.octets();
    Ipv4Addr::new(o[0], o[1], 0, 1)
}

/// The first fragment of a UDP datagram from `src` to `PEER:53`.
fn first_fragment(src: Ipv4Addr, id: u16) -> Vec<u8> {
    let mut f = packet::udp4(sa(src, 6000), sa(PEER, 53), &[7; 24]);
    packet::set_fragment(&mut f, id, 0, true);
    f
}

/// Runs a hook on a frame: the last frame out, unless it was dropped.
pub type Runner<'a> = dyn FnMut(&mut World, Hook, &[u8]) -> Option<Vec<u8>> + 'a;

/// The IP identification of the seeded fragmented datagram.
pub const FRAG_ID: u16 = 0x77;

/// Seeds the flows whose answers the cases send: the sender's TCP, UDP
/// and ping out (and its IPv6 TCP), a client's flow to `NODE:8080`, a
/// fragmented datagram out. `run` runs a hook on a frame and returns
/// the last frame out, if it was not dropped.
pub fn seed(w: &mut World, run: &mut Runner<'_>) -> Seeds {
    let ep = &ENDPOINTS[w.sender];
    let s = ep.ip;
    let mut out = |w: &mut World, frame: Vec<u8>| {
        let frame = from_mac(frame, ep.mac);
        let routed = run(w, Hook::FromContainer, &frame)?;
        run(w, Hook::ToUplink, &routed)
    };
    let mut seeds = Seeds::default();
    if w.sender == ROUTED || NETS[ep.net].flags & weir_common::network::NET_MASQUERADE != 0 {
        let port = |f: Option<Vec<u8>>| f.map(|f| packet::view(&f).sport);
        seeds.tcp = port(out(w, packet::tcp_syn4(sa(s, 40000), sa(PEER, 80), 1)));
        seeds.udp = port(out(w, packet::udp4(sa(s, 5000), sa(PEER, 53), b"q")));
        seeds.icmp = port(out(w, packet::icmp_echo4(s, PEER, 7, 1)));
        out(w, first_fragment(s, FRAG_ID));
        assert!(seeds.tcp.is_some() && seeds.udp.is_some(), "seeding failed");
    }
    if let Some(s6) = ep.ip6 {
        let f = out(w, frame6(s6, PEER6, (40000, 80), 6, false));
        seeds.tcp6 = f.map(|f| u16::from_be_bytes([f[54], f[55]]));
        assert!(seeds.tcp6.is_some(), "seeding NAT66 failed");
    }
    let syn = packet::tcp_syn4(sa(PEER, 40001), sa(NODE, 8080), 1);
    assert!(
        run(w, Hook::TcFromUplink, &syn).is_some(),
        "seeding DNAT failed"
    );
    seeds
}

/// The cases for the endpoint whose turn it is, given its seeds.
#[must_use]
pub fn all(w: &World, seeds: &Seeds) -> Vec<Case> {
    let mut cases = from_container(w);
    let mut add = |hook, frames: Vec<Vec<u8>>| {
        cases.extend(frames.into_iter().map(|frame| Case { hook, frame }));
    };
    add(Hook::ToUplink, to_uplink(w));
    let inbound = from_uplink(w, seeds);
    add(Hook::TcFromUplink, inbound.clone());
    add(Hook::FromUplink, inbound);
    let s = ENDPOINTS[w.sender].ip;
    add(
        Hook::FromBridge,
        vec![
            packet::udp4(sa(Ipv4Addr::new(10, 88, 0, 50), 5000), sa(PEER, 53), b"q"),
            packet::udp4(sa(s, 5000), sa(PEER, 53), b"q"),
            packet::tcp_syn4(sa(s, 40000), sa(ENDPOINTS[C2].ip, 80), 1),
        ],
    );
    cases
}

fn from_container(w: &World) -> Vec<Case> {
    let ep = &ENDPOINTS[w.sender];
    let s = ep.ip;
    let gw = gateway(ep.net);
    let mut frames = vec![
        packet::tcp_syn4(sa(s, 40000), sa(PEER, 80), 1),
        packet::udp4(sa(s, 5000), sa(PEER, 53), b"q"),
        packet::icmp_echo4(s, PEER, 7, 1),
        packet::tcp_syn4(sa(s, 40100), sa(ENDPOINTS[C2].ip, 80), 1),
        packet::tcp_syn4(sa(s, 40101), sa(ENDPOINTS[NO_ICC + 1].ip, 80), 1),
        packet::udp4(sa(s, 5001), sa(gw, 53), b"q"),
        packet::tcp_syn4(sa(s, 40102), sa(NODE, 8080), 1),
        packet::tcp_syn4(sa(s, 40103), sa(NODE, 9090), 1),
        packet::tcp_syn4(sa(s, 40104), sa(NODE, 7070), 1),
        packet::arp_request(s, gw),
        packet::icmp_port_unreachable4(s, PEER, &packet::udp4(sa(PEER, 53), sa(s, 5000), b"q")),
        first_fragment(s, 0x78),
    ];
    if w.sender == C1 {
        frames.push(packet::tcp_ack4(sa(s, 80), sa(PEER, 40001), 9, 2, true));
    }
    if let Some(s6) = ep.ip6 {
        let neighbour = Ipv6Addr::from(u128::from(s6) + 1);
        frames.extend([
            frame6(s6, PEER6, (40000, 80), 6, false),
            frame6(s6, PEER6, (7, 7), 58, false),
            frame6(s6, neighbour, (5000, 53), 17, false),
        ]);
    }
    frames
        .into_iter()
        .map(|f| Case {
            hook: Hook::FromContainer,
            frame: from_mac(f, ep.mac),
        })
        .collect()
}

fn to_uplink(w: &World) -> Vec<Vec<u8>> {
    let ep = &ENDPOINTS[w.sender];
    let s = ep.ip;
    let mut later = packet::later_fragment4(s, PEER, 17, FRAG_ID, 4, false, &[8; 16]);
    later[6..12].copy_from_slice(&ep.mac);
    let mut frames = vec![
        packet::tcp_syn4(sa(s, 40010), sa(PEER, 80), 1),
        packet::tcp_ack4(sa(s, 40000), sa(PEER, 80), 2, 10, false),
        packet::udp4(sa(s, 5000), sa(PEER, 53), b"q"),
        packet::icmp_echo4(s, PEER, 7, 2),
        packet::tcp_syn4(sa(Ipv4Addr::new(10, 88, 0, 77), 40000), sa(PEER, 80), 1),
        later,
    ];
    if let Some(s6) = ep.ip6 {
        frames.push(frame6(s6, PEER6, (40000, 80), 6, true));
        frames.push(frame6(s6, PEER6, (5000, 53), 17, false));
    }
    frames
}

fn from_uplink(w: &World, seeds: &Seeds) -> Vec<Vec<u8>> {
    let routed = ENDPOINTS[ROUTED].ip;
    let mut frames = vec![
        packet::tcp_syn4(sa(PEER, 40002), sa(NODE, 8080), 1),
        packet::tcp_ack4(sa(PEER, 40001), sa(NODE, 8080), 2, 10, false),
        packet::udp4(sa(PEER, 40003), sa(NODE, 5353), b"q"),
        packet::tcp_syn4(sa(PEER, 40004), sa(NODE, 7070), 1),
        packet::tcp_syn4(sa(PEER, 40005), sa(NODE, 9090), 1),
        packet::tcp_syn4(sa(FRIEND, 40006), sa(NODE, ALLOW_LISTED), 1),
        packet::tcp_syn4(sa(STRANGER, 40007), sa(NODE, ALLOW_LISTED), 1),
        packet::tcp_syn4(sa(PEER, 40008), sa(routed, ROUTED_OPEN), 1),
        packet::tcp_syn4(sa(PEER, 40009), sa(routed, 22), 1),
        packet::tcp_syn4(sa(PEER, 40010), sa(ENDPOINTS[C1].ip, 80), 1),
        packet::tcp_syn4(sa(Ipv4Addr::LOCALHOST, 40011), sa(NODE, 8080), 1),
        packet::tcp_syn4(sa(Ipv4Addr::new(10, 88, 0, 9), 40012), sa(NODE, 8080), 1),
        packet::icmp_echo4(PEER, NODE, 9, 1),
        packet::later_fragment4(PEER, NODE, 17, 0x79, 4, false, &[9; 16]),
        frame6(PEER6, NODE6, (40013, PUBLISHED6), 6, false),
        frame6(PEER6, ENDPOINTS[C1].ip6.unwrap(), (40014, 80), 6, false),
    ];
    if let Some(p) = seeds.tcp {
        let to = if w.sender == ROUTED { routed } else { NODE };
        frames.push(packet::tcp_ack4(sa(PEER, 80), sa(to, p), 9, 2, true));
    }
    if let Some(p) = seeds.udp {
        let to = if w.sender == ROUTED { routed } else { NODE };
        frames.push(packet::udp4(sa(PEER, 53), sa(to, p), b"a"));
        frames.push(packet::icmp_port_unreachable4(
            PEER,
            to,
            &packet::udp4(sa(to, p), sa(PEER, 53), b"q"),
        ));
    }
    if let Some(id) = seeds.icmp {
        frames.push(packet::icmp_echo_reply4(PEER, NODE, id, 1));
    }
    if let Some(p) = seeds.tcp6 {
        frames.push(frame6(PEER6, NODE6, (80, p), 6, true));
    }
    frames
}
