//! Frames for `BPF_PROG_TEST_RUN`: built with `etherparse` (correct lengths
//! and checksums), checked with an independent checksum verifier, decoded
//! into a flat view for assertions.

use std::net::{Ipv4Addr, SocketAddrV4};

use etherparse::{
    IcmpEchoHeader, Icmpv4Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice,
};

/// The MAC of the "container" side in built frames.
pub const MAC_CONTAINER: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
/// The MAC of the "host" side in built frames.
pub const MAC_HOST: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x01];

const TTL: u8 = 64;

/// An Ethernet/IPv4/UDP frame.
#[must_use]
pub fn udp4(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST)
        .ipv4(src.ip().octets(), dst.ip().octets(), TTL)
        .udp(src.port(), dst.port());
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut frame, payload).expect("build UDP frame");
    frame
}

/// An Ethernet/IPv4/TCP SYN.
#[must_use]
pub fn tcp_syn4(src: SocketAddrV4, dst: SocketAddrV4, seq: u32) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST)
        .ipv4(src.ip().octets(), dst.ip().octets(), TTL)
        .tcp(src.port(), dst.port(), seq, 64240)
        .syn();
    let mut frame = Vec::with_capacity(builder.size(0));
    builder.write(&mut frame, &[]).expect("build TCP frame");
    frame
}

/// An Ethernet/IPv4/TCP segment with ACK set (and SYN if `syn`): a SYN-ACK
/// or a plain ACK.
#[must_use]
pub fn tcp_ack4(src: SocketAddrV4, dst: SocketAddrV4, seq: u32, ack: u32, syn: bool) -> Vec<u8> {
    let mut builder = PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST)
        .ipv4(src.ip().octets(), dst.ip().octets(), TTL)
        .tcp(src.port(), dst.port(), seq, 64240)
        .ack(ack);
    if syn {
        builder = builder.syn();
    }
    let mut frame = Vec::with_capacity(builder.size(0));
    builder.write(&mut frame, &[]).expect("build TCP frame");
    frame
}

/// An Ethernet/IPv6/TCP segment: a SYN, or with `ack` an ACK (and SYN if
/// `syn` too).
#[must_use]
pub fn tcp6(
    src: std::net::SocketAddrV6,
    dst: std::net::SocketAddrV6,
    syn: bool,
    ack: Option<u32>,
) -> Vec<u8> {
    let mut builder = PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST)
        .ipv6(src.ip().octets(), dst.ip().octets(), TTL)
        .tcp(src.port(), dst.port(), 1, 64240);
    if let Some(ack) = ack {
        builder = builder.ack(ack);
    }
    if syn {
        builder = builder.syn();
    }
    let mut frame = Vec::with_capacity(builder.size(0));
    builder.write(&mut frame, &[]).expect("build TCP frame");
    frame
}

/// An Ethernet/IPv4/TCP reset (with ACK), as a closing socket with
/// `SO_LINGER` 0 sends it.
#[must_use]
pub fn tcp_rst4(src: SocketAddrV4, dst: SocketAddrV4, seq: u32, ack: u32) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(MAC_CONTAINER, MAC_HOST)
        .ipv4(src.ip().octets(), dst.ip().octets(), TTL)
        .tcp(src.port(), dst.port(), seq, 0)
        .ack(ack)
        .rst();
    let mut frame = Vec::with_capacity(builder.size(0));
    builder.write(&mut frame, &[]).expect("build TCP frame");
    frame
}

/// Offsets of the fields NAT rewrites, from the start of a frame without
/// IP options.
pub mod off {
    pub const TTL: usize = 22;
    pub const IP_CSUM: std::ops::Range<usize> = 24..26;
    pub const SADDR: std::ops::Range<usize> = 26..30;
    pub const DADDR: std::ops::Range<usize> = 30..34;
    pub const SPORT: std::ops::Range<usize> = 34..36;
    pub const DPORT: std::ops::Range<usize> = 36..38;
    pub const UDP_CSUM: std::ops::Range<usize> = 40..42;
    pub const TCP_CSUM: std::ops::Range<usize> = 50..52;
}

/// Checks a frame a fast path sent into a container after DNAT: to the
/// container's MAC from the one it was sent to, one hop less to live, and
/// no byte changed but those, the destination and the checksums.
pub fn assert_dnat_into_container(sent: &[u8], out: &[u8]) {
    assert_eq!(out[..6], MAC_CONTAINER);
    assert_eq!(out[6..12], MAC_HOST);
    assert_eq!(out[off::TTL], sent[off::TTL] - 1);
    for i in changed(sent, out) {
        assert!(
            i < 12
                || i == off::TTL
                || off::DADDR.contains(&i)
                || off::DPORT.contains(&i)
                || off::IP_CSUM.contains(&i)
                || off::TCP_CSUM.contains(&i),
            "byte {i} changed"
        );
    }
}

/// The offsets at which two frames of one length differ.
#[must_use]
pub fn changed(a: &[u8], b: &[u8]) -> Vec<usize> {
    assert_eq!(a.len(), b.len(), "frame length changed");
    (0..a.len()).filter(|&i| a[i] != b[i]).collect()
}

/// An Ethernet/IPv4/ICMP echo request (container to host side).
#[must_use]
pub fn icmp_echo4(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
    echo4(
        src,
        dst,
        Icmpv4Type::EchoRequest(IcmpEchoHeader { id, seq }),
        (MAC_CONTAINER, MAC_HOST),
    )
}

/// An Ethernet/IPv4/ICMP echo reply (host side to container).
#[must_use]
pub fn icmp_echo_reply4(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
    echo4(
        src,
        dst,
        Icmpv4Type::EchoReply(IcmpEchoHeader { id, seq }),
        (MAC_HOST, MAC_CONTAINER),
    )
}

fn echo4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    kind: Icmpv4Type,
    (from, to): ([u8; 6], [u8; 6]),
) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(from, to)
        .ipv4(src.octets(), dst.octets(), TTL)
        .icmpv4(kind);
    let mut frame = Vec::with_capacity(builder.size(8));
    builder
        .write(&mut frame, b"weirping")
        .expect("build ICMP frame");
    frame
}

/// An ICMP port unreachable from `from` to `to`, quoting the IPv4 header
/// and the first 8 L4 bytes of `quoted` (an Ethernet frame), as routers
/// and hosts do.
#[must_use]
pub fn icmp_port_unreachable4(from: Ipv4Addr, to: Ipv4Addr, quoted: &[u8]) -> Vec<u8> {
    use etherparse::icmpv4::DestUnreachableHeader;
    icmp_error4(
        from,
        to,
        quoted,
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port),
    )
}

/// An ICMP error of any type, quoting `quoted` like
/// [`icmp_port_unreachable4`].
#[must_use]
pub fn icmp_error4(from: Ipv4Addr, to: Ipv4Addr, quoted: &[u8], icmp_type: Icmpv4Type) -> Vec<u8> {
    let ip = &quoted[IPV4_OFFSET..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let payload = &ip[..ihl + 8];
    let builder = PacketBuilder::ethernet2(MAC_HOST, MAC_CONTAINER)
        .ipv4(from.octets(), to.octets(), TTL)
        .icmpv4(icmp_type);
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder
        .write(&mut frame, payload)
        .expect("build ICMP error");
    frame
}

/// The quoted packet of an ICMP error frame, decoded like [`view`], and
/// whether its IPv4 header checksum is valid.
#[must_use]
pub fn quoted_view(frame: &[u8]) -> (Ipv4View, bool) {
    let outer_ihl = usize::from(frame[IPV4_OFFSET] & 0x0f) * 4;
    let inner = &frame[IPV4_OFFSET + outer_ihl + 8..];
    let ihl = usize::from(inner[0] & 0x0f) * 4;
    let csum_ok = fold(sum(&inner[..ihl], 0)) == 0xffff;
    let ports = &inner[ihl..];
    let (sport, dport) = if inner[9] == 1 {
        let id = u16::from_be_bytes([ports[4], ports[5]]);
        (id, id)
    } else {
        (
            u16::from_be_bytes([ports[0], ports[1]]),
            u16::from_be_bytes([ports[2], ports[3]]),
        )
    };
    let v = Ipv4View {
        src: Ipv4Addr::new(inner[12], inner[13], inner[14], inner[15]),
        dst: Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]),
        proto: inner[9],
        sport,
        dport,
    };
    (v, csum_ok)
}

/// An ARP request (who-has `target` tell `sender`), broadcast.
#[must_use]
pub fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&MAC_CONTAINER);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f.extend_from_slice(&MAC_CONTAINER);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// Offset of the IPv4 header in an untagged Ethernet frame.
pub const IPV4_OFFSET: usize = 14;

/// The fields of an IPv4 frame that NAT and filtering care about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4View {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    /// Source and destination port (TCP/UDP), or the echo identifier twice
    /// (ICMP echo); 0 otherwise.
    pub sport: u16,
    pub dport: u16,
}

/// Decodes an Ethernet/IPv4 frame; panics (with the reason) on anything else.
#[must_use]
pub fn view(frame: &[u8]) -> Ipv4View {
    let sliced = SlicedPacket::from_ethernet(frame).expect("an Ethernet frame");
    let Some(NetSlice::Ipv4(ip)) = sliced.net else {
        panic!("not an IPv4 frame: {frame:02x?}");
    };
    let h = ip.header();
    let (sport, dport) = match sliced.transport {
        Some(TransportSlice::Tcp(t)) => (t.source_port(), t.destination_port()),
        Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
        Some(TransportSlice::Icmpv4(i)) => {
            let id = u16::from_be_bytes([i.slice()[4], i.slice()[5]]);
            (id, id)
        }
        _ => (0, 0),
    };
    Ipv4View {
        src: h.source_addr(),
        dst: h.destination_addr(),
        proto: h.protocol().0,
        sport,
        dport,
    }
}

/// Checks the IPv4 header checksum and the TCP, UDP or ICMP checksum of a
/// frame, computed from scratch. A UDP checksum of 0 means "none" and passes.
pub fn verify_checksums(frame: &[u8]) -> Result<(), String> {
    let ip = frame
        .get(IPV4_OFFSET..)
        .ok_or("frame shorter than Ethernet")?;
    let ihl = usize::from(ip.first().ok_or("no IPv4 header")? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip.len() < total || total < ihl {
        return Err(format!("IPv4 total length {total} does not fit"));
    }
    if fold(sum(&ip[..ihl], 0)) != 0xffff {
        return Err("bad IPv4 header checksum".into());
    }
    // A fragment after the first carries no L4 header; a first fragment's
    // checksum covers the whole datagram, here as much of it as it holds.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return Ok(());
    }
    let l4 = &ip[ihl..total];
    let proto = ip[9];
    let pseudo = sum(
        &ip[12..20],
        u32::from(proto) + u32::try_from(l4.len()).expect("len"),
    );
    let ok = match proto {
        6 => fold(sum(l4, pseudo)) == 0xffff,
        17 => (l4.len() >= 8 && l4[6..8] == [0, 0]) || fold(sum(l4, pseudo)) == 0xffff,
        1 => fold(sum(l4, 0)) == 0xffff,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("bad L4 checksum (protocol {proto})"))
    }
}

/// Marks an IPv4 frame a fragment: identification `id`, offset `offset8`
/// (in 8-byte units), more fragments to follow or not; its header checksum
/// made anew.
pub fn set_fragment(frame: &mut [u8], id: u16, offset8: u16, more: bool) {
    let ip = &mut frame[IPV4_OFFSET..];
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    let frags = offset8 | if more { 0x2000 } else { 0 };
    ip[6..8].copy_from_slice(&frags.to_be_bytes());
    refresh_ip_csum(ip);
}

/// A fragment after a datagram's first: an IPv4 header of protocol
/// `proto` at offset `offset8` (8-byte units) and `payload` (no L4 header).
#[must_use]
pub fn later_fragment4(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    id: u16,
    offset8: u16,
    more: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_HOST);
    f.extend_from_slice(&MAC_CONTAINER);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = u16::try_from(20 + payload.len()).expect("a fragment fits");
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(&[64, proto, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(payload);
    set_fragment(&mut f, id, offset8, more);
    f
}

fn refresh_ip_csum(ip: &mut [u8]) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    ip[10..12].copy_from_slice(&[0, 0]);
    let csum = !fold(sum(&ip[..ihl], 0));
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
}

/// Sets the TTL of an IPv4 frame, with its header checksum made anew (an
/// IPv6 frame's hop limit).
pub fn set_ttl(frame: &mut [u8], ttl: u8) {
    let ip = &mut frame[IPV4_OFFSET..];
    if ip[0] >> 4 == 6 {
        // IPv6's hop limit, which no checksum covers.
        ip[7] = ttl;
        return;
    }
    ip[8] = ttl;
    refresh_ip_csum(ip);
}

/// The ones' complement sum of `bytes` (16-bit words, an odd last byte
/// padded) added to `init`, unfolded.
pub(crate) fn sum(bytes: &[u8], init: u32) -> u32 {
    bytes.chunks(2).fold(init, |acc, pair| {
        acc + u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]))
    })
}

/// `s` folded to 16 bits.
pub(crate) fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    u16::try_from(s).expect("folded")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().expect("addr")
    }

    #[test]
    fn built_frames_verify_and_decode() {
        let udp = udp4(addr("10.0.0.2:1000"), addr("192.0.2.1:53"), b"hello");
        verify_checksums(&udp).expect("udp");
        let v = view(&udp);
        assert_eq!((v.proto, v.sport, v.dport), (17, 1000, 53));
        let syn = tcp_syn4(addr("10.0.0.2:1000"), addr("192.0.2.1:80"), 7);
        verify_checksums(&syn).expect("tcp");
        let ping = icmp_echo4(
            "10.0.0.2".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            9,
            1,
        );
        verify_checksums(&ping).expect("icmp");
        assert_eq!(view(&ping).sport, 9);
    }

    #[test]
    fn a_flipped_bit_is_caught() {
        let mut syn = tcp_syn4(addr("10.0.0.2:1000"), addr("192.0.2.1:80"), 7);
        syn[IPV4_OFFSET + 12] ^= 1; // source address, IP checksum now stale
        assert!(verify_checksums(&syn).is_err());
        let mut udp = udp4(addr("10.0.0.2:1000"), addr("192.0.2.1:53"), b"hello");
        let last = udp.len() - 1;
        udp[last] ^= 1; // payload, UDP checksum now stale
        assert!(verify_checksums(&udp).is_err());
    }
}
