//! Every map of the datapath, in one place. Maps are BTF-defined
//! (`#[btf_map]`), so `bpftool map dump` prints their keys and values with
//! field names. Names are at most 15 characters (the kernel's limit) and are
//! the names the agent pins them under.

use aya_ebpf::{btf_maps::PerCpuArray, macros::btf_map};
use weir_common::{drop::DropReason, stats::Counter, stats::Hook};

/// Packets and bytes seen by each hook, indexed by [`Hook`].
#[btf_map]
pub static HOOK_STATS: PerCpuArray<Counter, { Hook::MAP_SIZE as usize }> = PerCpuArray::new();

/// Packets and bytes dropped, indexed by the stable [`DropReason`] number.
#[btf_map]
pub static DROP_STATS: PerCpuArray<Counter, { DropReason::MAP_SIZE as usize }> = PerCpuArray::new();
