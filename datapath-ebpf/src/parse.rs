//! Bounds-checked access to packet headers, for tc and XDP alike.

use core::mem;

use aya_ebpf::programs::TcContext;
use network_types::{
    eth::{EthHdr, EtherType},
    ip::Ipv4Hdr,
};
use weir_common::drop::DropReason;

/// A packet whose bytes lie between `data` and `data_end` (tc or XDP).
pub trait Packet {
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
}

impl Packet for TcContext {
    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }
}

/// A pointer to a `T` at `offset`, or `None` when the packet is too short.
/// The check is the one the verifier wants to see before any access.
#[inline(always)]
pub fn ptr_at<T>(pkt: &impl Packet, offset: usize) -> Option<*const T> {
    let start = pkt.data();
    if start + offset + mem::size_of::<T>() > pkt.data_end() {
        return None;
    }
    Some((start + offset) as *const T)
}

/// The IPv4 header of an Ethernet frame, validated: version 4, a header
/// length of at least 20 bytes, and a total length that fits the frame.
/// `Ok(None)` for a frame that is not IPv4 (ARP, IPv6, ...).
#[inline(always)]
pub fn ipv4(pkt: &impl Packet) -> Result<Option<*const Ipv4Hdr>, DropReason> {
    let eth: *const EthHdr = ptr_at(pkt, 0).ok_or(DropReason::Malformed)?;
    // SAFETY: `ptr_at` checked that the whole header is inside the packet.
    if unsafe { (*eth).ether_type } != EtherType::Ipv4 as u16 {
        return Ok(None);
    }
    let ip: *const Ipv4Hdr = ptr_at(pkt, EthHdr::LEN).ok_or(DropReason::Malformed)?;
    // SAFETY: as above.
    let (vihl, tot_len) = unsafe { ((*ip).vihl, u16::from_be_bytes((*ip).tot_len)) };
    let header_len = usize::from(vihl & 0x0f) * 4;
    let frame_room = pkt.data_end() - pkt.data() - EthHdr::LEN;
    if vihl >> 4 != 4
        || header_len < Ipv4Hdr::LEN
        || usize::from(tot_len) < header_len
        || usize::from(tot_len) > frame_room
    {
        return Err(DropReason::Malformed);
    }
    Ok(Some(ip))
}
