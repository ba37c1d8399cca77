//! Every map of the datapath, in one place. Names are at most 15 characters
//! (the kernel's limit) and are the names the agent pins them under.

use aya_ebpf::{macros::map, maps::PerCpuArray};
use weir_common::{drop::DropReason, stats::Counter, stats::Hook};

/// Packets and bytes seen by each hook, indexed by [`Hook`].
#[map(name = "HOOK_STATS")]
pub static HOOK_STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(Hook::MAP_SIZE, 0);

/// Packets and bytes dropped, indexed by the stable [`DropReason`] number.
#[map(name = "DROP_STATS")]
pub static DROP_STATS: PerCpuArray<Counter> =
    PerCpuArray::with_max_entries(DropReason::MAP_SIZE, 0);
