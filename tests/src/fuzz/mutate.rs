//! Mutations of a valid frame: the malformed and the unusual a network
//! can hand an uplink or a container can send.

use rand::{Rng, RngExt};

use super::frame::{self, Outline};

/// The shortest frame a device hands a program (`BPF_PROG_TEST_RUN`
/// refuses shorter ones): an Ethernet header.
const MIN_FRAME: usize = 14;

/// What a mutation did, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mutation {
    Truncate,
    FlipBit,
    RandomByte,
    Ihl,
    TotalLength,
    IpOptions,
    TcpFlags,
    UdpChecksum,
    Fragment,
    Vlan,
    IcmpQuotingGarbage,
    IcmpQuotingFlow,
    Ipv6Extension,
    Ttl,
}

pub const ALL: [Mutation; 14] = [
    Mutation::Truncate,
    Mutation::FlipBit,
    Mutation::RandomByte,
    Mutation::Ihl,
    Mutation::TotalLength,
    Mutation::IpOptions,
    Mutation::TcpFlags,
    Mutation::UdpChecksum,
    Mutation::Fragment,
    Mutation::Vlan,
    Mutation::IcmpQuotingGarbage,
    Mutation::IcmpQuotingFlow,
    Mutation::Ipv6Extension,
    Mutation::Ttl,
];

/// Applies `m` to `f` (a no-op where the frame has nothing it applies to).
/// The checksums are left as the mutation leaves them; the caller makes
/// them right again or not.
pub fn apply(f: &mut Vec<u8>, m: Mutation, rng: &mut impl Rng) {
    let Some(o) = frame::outline(f) else {
        match m {
            Mutation::Truncate if f.len() > MIN_FRAME => {
                f.truncate(rng.random_range(MIN_FRAME..f.len()));
            }
            _ if !f.is_empty() => {
                let i = rng.random_range(0..f.len());
                f[i] = rng.random();
            }
            _ => {}
        }
        return;
    };
    let ip = o.ip_offset;
    let v4 = o.src.is_ipv4();
    match m {
        Mutation::Truncate if f.len() > MIN_FRAME => {
            f.truncate(rng.random_range(MIN_FRAME..f.len()));
        }
        Mutation::FlipBit => {
            let i = rng.random_range(0..f.len());
            f[i] ^= 1 << rng.random_range(0..8);
        }
        Mutation::RandomByte => {
            let i = rng.random_range(ip.min(f.len() - 1)..f.len());
            f[i] = rng.random();
        }
        Mutation::Ihl if v4 => f[ip] = 0x40 | rng.random_range(0..16u8),
        Mutation::TotalLength => {
            let at = if v4 { ip + 2 } else { ip + 4 };
            let len = u16::from_be_bytes([f[at], f[at + 1]]);
            let new = match rng.random_range(0..4) {
                0 => 0,
                1 => len.wrapping_add(rng.random_range(1..64)),
                2 => len.saturating_sub(rng.random_range(1..64)),
                _ => rng.random(),
            };
            f[at..at + 2].copy_from_slice(&new.to_be_bytes());
        }
        Mutation::IpOptions if v4 && f[ip] == 0x45 => ip_options(f, ip, rng),
        Mutation::TcpFlags if o.proto == 6 => {
            if let Some(l4) = l4_offset(f, &o) {
                f[l4 + 13] = rng.random();
            }
        }
        Mutation::UdpChecksum if o.proto == 17 => {
            if let Some(l4) = l4_offset(f, &o) {
                let c: u16 = if rng.random_bool(0.5) {
                    0
                } else {
                    rng.random::<u16>() | 1
                };
                f[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
            }
        }
        Mutation::Fragment if v4 => {
            let offset: u16 = if rng.random_bool(0.5) {
                0
            } else {
                rng.random_range(1..0x1fff)
            };
            let more = rng.random_bool(0.5);
            let v = offset | if more { 0x2000 } else { 0 };
            f[ip + 6..ip + 8].copy_from_slice(&v.to_be_bytes());
        }
        Mutation::Vlan => {
            let tag = [0x81, 0x00, 0x00, rng.random_range(1..100)];
            f.splice(12..12, tag);
        }
        Mutation::IcmpQuotingGarbage => {
            let mut quoted = f[ip..].to_vec();
            for b in quoted.iter_mut().skip(rng.random_range(0..20)) {
                *b = rng.random();
            }
            *f = icmp_error(f, ip, &o, &quoted, rng);
        }
        Mutation::IcmpQuotingFlow => {
            let quoted = reversed(&f[ip..], v4);
            *f = icmp_error(f, ip, &o, &quoted, rng);
        }
        Mutation::Ipv6Extension if !v4 => ipv6_extension(f, ip, rng),
        Mutation::Ttl => {
            let at = if v4 { ip + 8 } else { ip + 7 };
            f[at] = rng.random_range(0..3);
        }
        _ => {}
    }
}

/// Where the L4 header starts, when the frame holds all of it.
fn l4_offset(f: &[u8], o: &Outline) -> Option<usize> {
    let at = if o.src.is_ipv4() {
        o.ip_offset + usize::from(f[o.ip_offset] & 0x0f) * 4
    } else {
        o.ip_offset + 40
    };
    (f.len() >= at + 20).then_some(at)
}

/// Inserts 4 to 40 bytes of options (random, or NOPs and an end).
fn ip_options(f: &mut Vec<u8>, ip: usize, rng: &mut impl Rng) {
    let words = rng.random_range(1..=10u8);
    let mut opts = vec![1u8; usize::from(words) * 4];
    if rng.random_bool(0.5) {
        rng.fill(&mut opts[..]);
    } else {
        let last = opts.len() - 1;
        opts[last] = 0;
    }
    f.splice(ip + 20..ip + 20, opts);
    f[ip] = 0x40 | (5 + words);
    let total = u16::from_be_bytes([f[ip + 2], f[ip + 3]]) + u16::from(words) * 4;
    f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
}

/// Inserts a hop-by-hop or destination options header (8 bytes).
fn ipv6_extension(f: &mut Vec<u8>, ip: usize, rng: &mut impl Rng) {
    let next = f[ip + 6];
    let kind = if rng.random_bool(0.5) { 0 } else { 60 };
    f.splice(ip + 40..ip + 40, [next, 0, 1, 4, 0, 0, 0, 0]);
    f[ip + 6] = kind;
    let len = u16::from_be_bytes([f[ip + 4], f[ip + 5]]) + 8;
    f[ip + 4..ip + 6].copy_from_slice(&len.to_be_bytes());
}

/// An IP packet with its addresses and ports swapped: what went the
/// other way on the same flow.
fn reversed(ip: &[u8], v4: bool) -> Vec<u8> {
    let mut q = ip.to_vec();
    let (src, len, l4) = if v4 {
        (12, 4, usize::from(q[0] & 0x0f) * 4)
    } else {
        (8, 16, 40)
    };
    let (a, b) = q[src..src + 2 * len].split_at_mut(len);
    a.swap_with_slice(b);
    if q.len() >= l4 + 4 {
        let (a, b) = q[l4..l4 + 4].split_at_mut(2);
        a.swap_with_slice(b);
    }
    q
}

/// An ICMP (`ICMPv6`) error from `o`'s source to its destination (the
/// way the frame went), quoting `quoted` (cut to a plausible length).
fn icmp_error(f: &[u8], ip: usize, o: &Outline, quoted: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    let mut out = f[..ip].to_vec();
    let keep = quoted.len().min(rng.random_range(8..=68));
    let quoted = &quoted[..keep];
    match (o.src, o.dst) {
        (std::net::IpAddr::V4(src), std::net::IpAddr::V4(dst)) => {
            let ty = [3u8, 11, 12][rng.random_range(0..3)];
            let total = u16::try_from(20 + 8 + quoted.len()).unwrap();
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 64, 1, 0, 0]);
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
            out.extend_from_slice(&[ty, rng.random_range(0..4), 0, 0, 0, 0, 0, 0]);
        }
        (std::net::IpAddr::V6(src), std::net::IpAddr::V6(dst)) => {
            let ty = rng.random_range(1..=4u8);
            let len = u16::try_from(8 + quoted.len()).unwrap();
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&[58, 64]);
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
            out.extend_from_slice(&[ty, 0, 0, 0, 0, 0, 5, 0xdc]);
        }
        _ => unreachable!("an outline's addresses are of one family"),
    }
    out.extend_from_slice(quoted);
    frame::refresh(&mut out);
    out
}
