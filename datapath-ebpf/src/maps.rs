//! Every map of the datapath, in one place. Maps are BTF-defined
//! (`#[btf_map]`), so `bpftool map dump` prints their keys and values with
//! field names. Names are at most 15 characters (the kernel's limit) and are
//! the names the agent pins them under.

use aya_ebpf::{
    btf_maps::{HashMap, PerCpuArray},
    macros::btf_map,
};
use weir_common::{
    drop::DropReason,
    endpoint::{EndpointInfo, EndpointRef, MAX_ENDPOINTS},
    stats::{Counter, Hook},
};

/// Packets and bytes seen by each hook, indexed by [`Hook`].
#[btf_map]
pub static HOOK_STATS: PerCpuArray<Counter, { Hook::MAP_SIZE as usize }> = PerCpuArray::new();

/// Packets and bytes dropped, indexed by the stable [`DropReason`] number.
#[btf_map]
pub static DROP_STATS: PerCpuArray<Counter, { DropReason::MAP_SIZE as usize }> = PerCpuArray::new();

/// Host-side ifindex of a container veth -> the endpoint behind it.
#[btf_map]
pub static ENDPOINTS: HashMap<u32, EndpointInfo, { MAX_ENDPOINTS as usize }> = HashMap::new();

/// Container address (network order) -> its veth and MAC.
#[btf_map]
pub static EP_BY_IP4: HashMap<[u8; 4], EndpointRef, { MAX_ENDPOINTS as usize }> = HashMap::new();
