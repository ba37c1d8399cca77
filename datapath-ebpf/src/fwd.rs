//! The fast path out of tc ingress: route the packet with the kernel's FIB
//! and send it to the next hop's device ourselves (`bpf_redirect_neigh`),
//! past the host's input path. Translated packets take it: a reply whose
//! source became a node address would be a "martian" to that input path.

use core::mem;

use aya_ebpf::{
    EbpfContext,
    bindings::{bpf_fib_lookup, bpf_redir_neigh},
    helpers::{bpf_fib_lookup as fib_lookup, bpf_redirect_neigh},
    programs::TcContext,
};
use weir_common::{ct::CtEntry, drop::DropReason};

use crate::{nat, verdict::TC_PASS};

const AF_INET: u8 = 2;
const BPF_FIB_LKUP_RET_SUCCESS: i64 = 0;
const BPF_FIB_LKUP_RET_NO_NEIGH: i64 = 7;

/// Redirects a packet that now carries `to`'s tuple to its next hop, or
/// hands it to the stack (`TC_PASS`) when the FIB has no forwarding answer
/// (local destination, no route, TTL spent).
#[inline(always)]
pub fn redirect(ctx: &TcContext, to: &CtEntry, proto: u8) -> Result<i32, DropReason> {
    // SAFETY: an all-zero `bpf_fib_lookup` is a valid one.
    let mut p: bpf_fib_lookup = unsafe { mem::zeroed() };
    p.family = AF_INET;
    p.l4_protocol = proto;
    p.sport = u16::from_ne_bytes(to.nat_sport);
    p.dport = u16::from_ne_bytes(to.nat_dport);
    // SAFETY: the skb pointer is the program's context.
    p.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    p.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(to.nat_saddr);
    p.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(to.nat_daddr);
    // SAFETY: `p` is a valid, writable lookup of the size we pass.
    let rc = unsafe {
        fib_lookup(
            ctx.as_ptr(),
            &raw mut p,
            mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    if rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH {
        return Ok(TC_PASS);
    }
    if !nat::decrement_ttl(ctx)? {
        return Ok(TC_PASS);
    }
    let mut nh = bpf_redir_neigh {
        nh_family: u32::from(AF_INET),
        // SAFETY: the lookup wrote the next hop's address here.
        __bindgen_anon_1: aya_ebpf::bindings::bpf_redir_neigh__bindgen_ty_1 {
            ipv4_nh: unsafe { p.__bindgen_anon_4.ipv4_dst },
        },
    };
    // SAFETY: `nh` is a valid next hop of the size we pass.
    let verdict = unsafe {
        bpf_redirect_neigh(
            p.ifindex,
            &raw mut nh,
            mem::size_of::<bpf_redir_neigh>() as i32,
            0,
        )
    };
    Ok(verdict as i32)
}
