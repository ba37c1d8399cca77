//! Every map's entries as the kernel holds them, for `weir maps` (the
//! agent puts names on them), and the links this datapath holds.

use std::os::fd::AsFd as _;

use aya::maps::{
    Array, MapData,
    lpm_trie::{Key, LpmTrie},
};
use weir_common::{
    config::{Config, SockRnatKey, SockRnatValue},
    endpoint::{EndpointInfo, EndpointRef},
    network::NetInfo,
    publish::{PublishKey, PublishKey6, PublishTarget, PublishTarget6},
};

use crate::api::types::LinkView;

use super::{Datapath, DatapathError, attach::Held, map_err, map_names, sys};

/// The entries of every keyed map, unnamed.
#[derive(Clone, Debug, Default)]
pub struct RawMaps {
    pub endpoints: Vec<(u32, EndpointInfo)>,
    pub by_ip: Vec<([u8; 4], EndpointRef)>,
    pub published: Vec<(PublishKey, PublishTarget)>,
    pub published6: Vec<(PublishKey6, PublishTarget6)>,
    pub open_ports: Vec<(PublishKey, u32)>,
    /// (subnet, prefix length, network).
    pub networks: Vec<([u8; 4], u32, NetInfo)>,
    pub host_addrs: Vec<([u8; 4], u32)>,
    pub uplinks: Vec<(u32, [u8; 4])>,
    pub config: Config,
    pub sock_rnat: usize,
}

impl Datapath {
    /// Reads every keyed map.
    pub fn dump(&self) -> Result<RawMaps, DatapathError> {
        let trie: LpmTrie<&MapData, [u8; 4], NetInfo> = self
            .ebpf
            .map(map_names::NETWORKS4)
            .ok_or(DatapathError::MissingMap(map_names::NETWORKS4))?
            .try_into()
            .map_err(|source| map_err(map_names::NETWORKS4, source))?;
        let networks = trie
            .iter()
            .filter_map(Result::ok)
            .map(|(k, v): (Key<[u8; 4]>, NetInfo)| (k.data(), k.prefix_len(), v))
            .collect();
        let config: Array<&MapData, Config> = self
            .ebpf
            .map(map_names::CONFIG)
            .ok_or(DatapathError::MissingMap(map_names::CONFIG))?
            .try_into()
            .map_err(|source| map_err(map_names::CONFIG, source))?;
        Ok(RawMaps {
            endpoints: self.endpoints()?,
            by_ip: self.entries(map_names::EP_BY_IP4)?,
            published: self.published()?,
            published6: self.published6()?,
            open_ports: self.entries(map_names::OPEN_PORTS4)?,
            networks,
            host_addrs: self.entries(map_names::HOST_ADDRS4)?,
            uplinks: self.entries(map_names::UPLINKS)?,
            config: config
                .get(&0, 0)
                .map_err(|source| map_err(map_names::CONFIG, source))?,
            sock_rnat: self
                .entries::<SockRnatKey, SockRnatValue>(map_names::SOCK_RNAT4)?
                .len(),
        })
    }

    /// The links this datapath holds, with what the kernel says of them.
    #[must_use]
    pub fn links(&self) -> Vec<LinkView> {
        self.links
            .iter()
            .map(|(name, held)| {
                let (info, pinned) = match held {
                    Held::Pinned(fd) => (sys::link_info(fd.as_fd()).ok(), true),
                    Held::Unpinned(_) => (None, false),
                };
                let info = info.unwrap_or_default();
                LinkView {
                    name: name.clone(),
                    link_id: info.id,
                    prog_id: info.prog_id,
                    ifindex: if info.link_type == sys::LINK_TYPE_TCX {
                        info.tcx_ifindex
                    } else {
                        0
                    },
                    pinned,
                }
            })
            .collect()
    }
}
