//! The head of a frame the datapath changes: its Ethernet header, the
//! fixed part of its IPv4 header and the 4 bytes after it (the ports of
//! a TCP or UDP packet without IP options), read once, edited in the
//! program (the IP checksum kept right as fields change, RFC 1624) and
//! written back with one `bpf_skb_store_bytes`. A helper call is among
//! the dearest things a program does on a packet; this makes MACs, TTL,
//! addresses, ports and the IP checksum one call instead of two or three
//! per field.
//!
//! The L4 checksum is not here: only the kernel knows whether a packet's
//! checksum is complete or still to be finished by the device
//! (`CHECKSUM_PARTIAL`), so [`crate::nat`] changes it with
//! `bpf_l4_csum_replace` and the [`diff`]s computed here.

use aya_ebpf::programs::TcContext;
use weir_common::drop::DropReason;

use crate::parse::{IP_CSUM_OFF, IP_OFF, IP_TTL_OFF, Packet, ptr_at};

/// Where the L4 header starts in a packet without IP options.
pub const PORTS_OFF: usize = IP_OFF + 20;
/// Ethernet, the 20 bytes of an IPv4 header every packet has, and 4 more:
/// the ports, or (IP options, ICMP) bytes written back as they were.
pub const LEN: usize = PORTS_OFF + 4;

pub struct Head {
    bytes: [u8; LEN],
    changed: bool,
}

impl Head {
    /// The head as the packet holds it now (after any helper that moved
    /// the packet's data).
    #[inline(always)]
    pub fn read(ctx: &impl Packet) -> Result<Self, DropReason> {
        let p: *const [u8; LEN] = ptr_at(ctx, 0).ok_or(DropReason::Malformed)?;
        Ok(Self {
            // SAFETY: `ptr_at` checked that the bytes are in the packet.
            bytes: unsafe { *p },
            changed: false,
        })
    }

    /// Sets the IPv4 address at frame offset `off` (source or destination).
    #[inline(always)]
    pub fn set_addr(&mut self, off: usize, new: [u8; 4]) {
        let b = &mut self.bytes;
        let old = [b[off], b[off + 1], b[off + 2], b[off + 3]];
        if old == new {
            return;
        }
        self.fix_ip_csum(addr_diff(0, old, new));
        for (i, byte) in new.into_iter().enumerate() {
            self.bytes[off + i] = byte;
        }
        self.changed = true;
    }

    /// Takes one off the TTL of a packet the datapath forwards itself.
    /// `false` when it is spent: the stack must have it, to answer with
    /// ICMP.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) -> bool {
        let (ttl, proto) = (self.bytes[IP_TTL_OFF], self.bytes[IP_TTL_OFF + 1]);
        if ttl <= 1 {
            return false;
        }
        self.fix_ip_csum(word_diff(0, [ttl, proto], [ttl - 1, proto]));
        self.bytes[IP_TTL_OFF] = ttl - 1;
        self.changed = true;
        true
    }

    /// Sets the ports of a TCP or UDP packet whose L4 header starts at
    /// [`PORTS_OFF`] (their checksum is the caller's).
    #[inline(always)]
    pub fn set_ports(&mut self, sport: [u8; 2], dport: [u8; 2]) {
        self.bytes[PORTS_OFF] = sport[0];
        self.bytes[PORTS_OFF + 1] = sport[1];
        self.bytes[PORTS_OFF + 2] = dport[0];
        self.bytes[PORTS_OFF + 3] = dport[1];
        self.changed = true;
    }

    /// The MAC the frame was sent to.
    #[inline(always)]
    pub fn dst_mac(&self) -> [u8; 6] {
        let b = &self.bytes;
        [b[0], b[1], b[2], b[3], b[4], b[5]]
    }

    /// Readdresses the frame from `src` to `dst`.
    #[inline(always)]
    pub fn set_macs(&mut self, dst: [u8; 6], src: [u8; 6]) {
        self.bytes[..6].copy_from_slice(&dst);
        self.bytes[6..12].copy_from_slice(&src);
        self.changed = true;
    }

    /// Writes the head back, if anything changed.
    #[inline(always)]
    pub fn write(&self, ctx: &TcContext) -> Result<(), DropReason> {
        if !self.changed {
            return Ok(());
        }
        ctx.store(0, &self.bytes, 0)
            .map_err(|_| DropReason::RewriteFailed)
    }

    #[inline(always)]
    fn fix_ip_csum(&mut self, diff: u32) {
        let old = [self.bytes[IP_CSUM_OFF], self.bytes[IP_CSUM_OFF + 1]];
        let new = apply(old, diff);
        self.bytes[IP_CSUM_OFF] = new[0];
        self.bytes[IP_CSUM_OFF + 1] = new[1];
    }
}

/// `acc` plus the change of one 16-bit word from `old` to `new` (`~m + m'`
/// in one's complement, RFC 1624). Words are taken in memory order, as
/// the kernel's own checksum code takes them; the sum does not care.
#[inline(always)]
pub fn word_diff(acc: u32, old: [u8; 2], new: [u8; 2]) -> u32 {
    acc + u32::from(!u16::from_ne_bytes(old)) + u32::from(u16::from_ne_bytes(new))
}

/// The change of a TCP or UDP header's two ports from `old` to `new`
/// (source, destination), each counted only where it changed.
#[inline(always)]
pub fn ports_diff(old: ([u8; 2], [u8; 2]), new: ([u8; 2], [u8; 2])) -> u32 {
    let mut acc = 0;
    if old.0 != new.0 {
        acc = word_diff(acc, old.0, new.0);
    }
    if old.1 != new.1 {
        acc = word_diff(acc, old.1, new.1);
    }
    acc
}

/// `acc` plus the change of an IPv4 address.
#[inline(always)]
pub fn addr_diff(acc: u32, old: [u8; 4], new: [u8; 4]) -> u32 {
    let acc = word_diff(acc, [old[0], old[1]], [new[0], new[1]]);
    word_diff(acc, [old[2], old[3]], [new[2], new[3]])
}

/// A checksum field (as in memory) after a change of `diff`:
/// `HC' = ~(~HC + diff)`.
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "folded twice, the sum is at most 0xffff"
)]
pub fn apply(field: [u8; 2], diff: u32) -> [u8; 2] {
    let mut s = u32::from(!u16::from_ne_bytes(field)) + diff;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    (!(s as u16)).to_ne_bytes()
}
