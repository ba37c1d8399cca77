//! What the fuzzer reads in a frame: the addresses and ports a judgement
//! needs, read raw so that a frame too broken for a parser still shows
//! where it was going, and the checksums, verified with `etherparse`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};

use crate::packet::{fold, sum};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// An IP packet's outline, as far as the frame's bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outline {
    /// Where the IP header starts (after Ethernet and any VLAN tags).
    pub ip_offset: usize,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// TCP/UDP ports or the ICMP echo identifier twice; 0 when absent.
    pub sport: u16,
    pub dport: u16,
    /// An IPv4 fragment after the first (no L4 header of its own).
    pub later_fragment: bool,
    /// An ICMP or `ICMPv6` error: the source of the packet it quotes.
    pub quoted_src: Option<IpAddr>,
    /// An ICMP or `ICMPv6` message's type.
    pub icmp_type: Option<u8>,
}

/// The ethertype after any VLAN tags and the offset of what follows.
fn ethertype(frame: &[u8]) -> Option<(u16, usize)> {
    let mut at = 12;
    loop {
        let t = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
        if t == ETH_P_8021Q || t == ETH_P_8021AD {
            at += 4;
        } else {
            return Some((t, at + 2));
        }
    }
}

fn addr4(b: &[u8]) -> Option<IpAddr> {
    let o: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some(IpAddr::V4(Ipv4Addr::from(o)))
}

fn addr6(b: &[u8]) -> Option<IpAddr> {
    let o: [u8; 16] = b.get(..16)?.try_into().ok()?;
    Some(IpAddr::V6(Ipv6Addr::from(o)))
}

fn port(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |p| u16::from_be_bytes([p[0], p[1]]))
}

/// Whether the frame carries an 802.1Q/802.1ad tag.
#[must_use]
pub fn tagged(frame: &[u8]) -> bool {
    ethertype(frame).is_some_and(|(_, at)| at > 14)
}

/// The outline of an IPv4 or IPv6 frame; `None` for anything else or a
/// frame that ends inside the IP addresses.
#[must_use]
pub fn outline(frame: &[u8]) -> Option<Outline> {
    let (ty, ip_offset) = ethertype(frame)?;
    let ip = frame.get(ip_offset..)?;
    let (src, dst, proto, l4, later_fragment) = match ty {
        ETH_P_IP => {
            let ihl = usize::from(*ip.first()? & 0x0f) * 4;
            let frag = port(ip, 6) & 0x1fff != 0;
            (
                addr4(ip.get(12..)?)?,
                addr4(ip.get(16..)?)?,
                *ip.get(9)?,
                ip.get(ihl.max(20)..).unwrap_or(&[]),
                frag,
            )
        }
        ETH_P_IPV6 => (
            addr6(ip.get(8..)?)?,
            addr6(ip.get(24..)?)?,
            *ip.get(6)?,
            ip.get(40..).unwrap_or(&[]),
            false,
        ),
        _ => return None,
    };
    let (mut sport, mut dport, mut quoted_src) = (0, 0, None);
    if !later_fragment {
        match (proto, l4.first()) {
            (6 | 17, _) => (sport, dport) = (port(l4, 0), port(l4, 2)),
            (1, Some(0 | 8)) | (58, Some(128 | 129)) => {
                sport = port(l4, 4);
                dport = sport;
            }
            (1, Some(3 | 4 | 5 | 11 | 12)) => quoted_src = l4.get(20..).and_then(addr4),
            (58, Some(1..=4)) => quoted_src = l4.get(16..).and_then(addr6),
            _ => {}
        }
    }
    Some(Outline {
        ip_offset,
        src,
        dst,
        proto,
        sport,
        dport,
        later_fragment,
        quoted_src,
        icmp_type: match proto {
            1 | 58 if !later_fragment => l4.first().copied(),
            _ => None,
        },
    })
}

/// Whether `etherparse` takes the frame for a whole IP packet whose IP
/// and L4 checksums are right (a UDP checksum of 0 over IPv4 is "none";
/// a later fragment has only its IP header's); `Err` says what is wrong.
pub fn checksums(frame: &[u8]) -> Result<(), String> {
    let p = SlicedPacket::from_ethernet(frame).map_err(|e| format!("does not parse: {e}"))?;
    match (&p.net, &p.transport) {
        (Some(NetSlice::Ipv4(ip)), t) => {
            let h = ip.header();
            if h.to_header().calc_header_checksum() != h.header_checksum() {
                return Err("bad IPv4 header checksum".into());
            }
            if ip.payload().fragmented && h.fragments_offset().value() != 0 {
                return Ok(());
            }
            let (src, dst) = (h.source(), h.destination());
            let ok = match t {
                Some(TransportSlice::Tcp(tcp)) => {
                    tcp.calc_checksum_ipv4(src, dst).ok() == Some(tcp.checksum())
                }
                Some(TransportSlice::Udp(udp)) => {
                    udp.checksum() == 0
                        || udp
                            .to_header()
                            .calc_checksum_ipv4_raw(src, dst, udp.payload())
                            .ok()
                            == Some(udp.checksum())
                }
                Some(TransportSlice::Icmpv4(icmp)) => {
                    icmp.icmp_type().calc_checksum(icmp.payload()) == icmp.checksum()
                }
                _ => true,
            };
            ok.then_some(()).ok_or_else(|| "bad L4 checksum".into())
        }
        (Some(NetSlice::Ipv6(ip)), t) => {
            let h = ip.header();
            let (src, dst) = (h.source(), h.destination());
            let ok = match t {
                Some(TransportSlice::Tcp(tcp)) => {
                    tcp.calc_checksum_ipv6(src, dst).ok() == Some(tcp.checksum())
                }
                Some(TransportSlice::Udp(udp)) => {
                    udp.to_header()
                        .calc_checksum_ipv6_raw(src, dst, udp.payload())
                        .ok()
                        == Some(udp.checksum())
                }
                Some(TransportSlice::Icmpv6(icmp)) => icmp.is_checksum_valid(src, dst),
                _ => true,
            };
            ok.then_some(()).ok_or_else(|| "bad L4 checksum".into())
        }
        _ => Err("not an IP packet".into()),
    }
}

/// Makes the IPv4 header checksum and the TCP, UDP or ICMP checksum of a
/// frame right again after a mutation (as far as its lengths allow), so
/// that it goes as deep into a program as a valid packet would.
pub fn refresh(frame: &mut [u8]) {
    let Some((ty, at)) = ethertype(frame) else {
        return;
    };
    let Some(ip) = frame.get_mut(at..) else {
        return;
    };
    match ty {
        ETH_P_IP if ip.len() >= 20 => {
            let ihl = (usize::from(ip[0] & 0x0f) * 4).clamp(20, ip.len());
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
            ip[10..12].fill(0);
            let c = !fold(sum(&ip[..ihl], 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            if port(ip, 6) & 0x1fff != 0 || total <= ihl {
                return;
            }
            let proto = ip[9];
            let pseudo = sum(
                &ip[12..20],
                u32::from(proto) + u32::try_from(total - ihl).unwrap_or(0),
            );
            l4_refresh(&mut ip[ihl..total], proto, pseudo, proto == 1);
        }
        ETH_P_IPV6 if ip.len() >= 40 => {
            let len = usize::from(u16::from_be_bytes([ip[4], ip[5]])).min(ip.len() - 40);
            let proto = ip[6];
            let pseudo = sum(
                &ip[8..40],
                u32::from(proto) + u32::try_from(len).unwrap_or(0),
            );
            l4_refresh(&mut ip[40..40 + len], proto, pseudo, false);
        }
        _ => {}
    }
}

fn l4_refresh(l4: &mut [u8], proto: u8, pseudo: u32, no_pseudo: bool) {
    let at = match proto {
        6 => 16,
        17 => 6,
        1 | 58 => 2,
        _ => return,
    };
    if l4.len() < at + 2 {
        return;
    }
    l4[at..at + 2].fill(0);
    let c = !fold(sum(l4, if no_pseudo { 0 } else { pseudo }));
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refreshed_frame_verifies_and_a_flipped_one_does_not() {
        let mut f = crate::packet::udp4(
            "10.0.0.1:1".parse().unwrap(),
            "10.0.0.2:2".parse().unwrap(),
            b"xyz",
        );
        checksums(&f).unwrap();
        f[20] ^= 0x40; // the DF flag: the IP checksum is now wrong
        assert!(checksums(&f).is_err());
        refresh(&mut f);
        checksums(&f).unwrap();
        let o = outline(&f).unwrap();
        assert_eq!((o.sport, o.dport, o.proto), (1, 2, 17));
    }
}
