//! IPv4 fragments of translated flows (`FRAG4`). A datagram's first
//! fragment is a flow's packet like any other and gets its translation
//! from conntrack; [`record`] keeps the addresses it left with under the
//! datagram's key as it arrived. Each later fragment (no L4 header) finds
//! them with [`lookup`] and gets the same address rewrite
//! ([`rewrite`]); where none is found, the hook decides: a fragment that
//! would reach a container, or leave a masquerading network with a
//! container's address, is dropped (`fragment-untracked`), never passed
//! untranslated.

use aya_ebpf::{helpers::bpf_skb_change_tail, programs::TcContext};
use weir_common::{
    ct::CtEntry,
    drop::DropReason,
    frag::{FragEntry, FragKey},
};

use crate::{
    head::{self, Head},
    maps::FRAG4,
    parse::{Flow, IP_DST_OFF, IP_SRC_OFF},
};

/// After `flow`'s first fragment was translated to `to`: its datagram's
/// later fragments will be too.
#[inline(always)]
pub fn record(flow: &Flow, to: &CtEntry) {
    if !flow.more_fragments {
        return;
    }
    let k = &flow.key;
    let key = FragKey::new(k.saddr, k.daddr, flow.ip_id, k.proto);
    let entry = FragEntry {
        nat_saddr: to.nat_saddr,
        nat_daddr: to.nat_daddr,
        fragments: 0,
        pad: 0,
    };
    // A full map evicts its oldest datagram; a failed insert leaves the
    // later fragments to the hook's verdict for untracked ones.
    let _ = FRAG4.insert(key, entry, 0);
}

/// The addresses a later fragment's datagram was given, counted.
#[inline(always)]
pub fn lookup(key: &FragKey) -> Option<FragEntry> {
    let p = FRAG4.get_ptr_mut(key)?;
    // SAFETY: a value pointer from a map lookup, used at once.
    unsafe {
        (*p).fragments = (*p).fragments.wrapping_add(1);
        Some(*p)
    }
}

/// Rewrites a later fragment's addresses as its first fragment's were
/// (the IP checksum with them; its payload has no L4 header to fix), in a
/// [`Head`] for the caller to forward and write. A last fragment shorter
/// than a head (under 4 bytes of payload) is padded to one first, as
/// Ethernet pads short frames; its IP length is unchanged.
#[inline(always)]
#[expect(
    clippy::cast_possible_truncation,
    reason = "`head::LEN`, a frame's head, is 38 bytes"
)]
pub fn rewrite(ctx: &TcContext, entry: &FragEntry) -> Result<Head, DropReason> {
    if (ctx.len() as usize) < head::LEN {
        // SAFETY: the helper takes the program's own skb and plain values.
        let rc = unsafe { bpf_skb_change_tail(ctx.skb.skb, head::LEN as u32, 0) };
        if rc != 0 || ctx.pull_data(head::LEN as u32).is_err() {
            return Err(DropReason::RewriteFailed);
        }
    }
    let mut head = Head::read(ctx)?;
    head.set_addr(IP_SRC_OFF, entry.nat_saddr);
    head.set_addr(IP_DST_OFF, entry.nat_daddr);
    Ok(head)
}
