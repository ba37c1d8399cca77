//! The weir datapath. This file holds only the entry points, one per attach
//! point; each names the hook it runs at and hands over to its module.
#![no_std]
#![no_main]

mod drop;
mod from_container;
mod maps;
mod parse;
mod stats;
mod verdict;

use aya_ebpf::{macros::classifier, programs::TcContext};

/// tcx ingress on the host side of every container veth: every packet a
/// container sends passes here first.
#[classifier]
pub fn tc_from_container(ctx: TcContext) -> i32 {
    match from_container::handle(&ctx) {
        Ok(verdict) => verdict,
        Err(reason) => drop::tc(&ctx, reason),
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
