//! Typed handles on the maps, one module per map family as in
//! `weir_common`: endpoints, published ports, networks and the node's
//! addresses, the programs' config, conntrack; counters are in
//! `counters.rs`. Here, what they share: making a map hold exactly a set
//! of entries, and reading a hash map whole.

mod config;
mod ct;
mod endpoint;
mod network;
mod publish;

use std::{collections::HashSet, os::fd::AsFd};

use aya::maps::{
    HashMap, MapData,
    lpm_trie::{Key, LpmTrie},
};

pub use self::endpoint::no_ipv4;
use super::{Datapath, DatapathError, absent_ok, map_err, pins, sys};

impl Datapath {
    /// Makes hash map `map` hold exactly `wanted`: keys it has and
    /// `wanted` lacks are removed, every wanted entry written.
    fn set_hash<K: aya::Pod + Eq + std::hash::Hash, V: aya::Pod>(
        &mut self,
        map: &'static str,
        wanted: &[(K, V)],
    ) -> Result<(), DatapathError> {
        let keep: HashSet<K> = wanted.iter().map(|(k, _)| *k).collect();
        let have: Vec<(K, V)> = self.entries(map)?;
        let mut hash = self.hash_map::<K, V>(map)?;
        for (key, _) in have {
            if !keep.contains(&key) {
                absent_ok(hash.remove(&key), map)?;
            }
        }
        for (key, value) in wanted {
            hash.insert(key, value, 0)
                .map_err(|source| map_err(map, source))?;
        }
        Ok(())
    }

    /// Makes LPM trie `name` hold exactly `wanted`.
    fn set_lpm<K: aya::Pod + PartialEq, V: aya::Pod>(
        &mut self,
        name: &'static str,
        wanted: &[(Key<K>, V)],
    ) -> Result<(), DatapathError> {
        let mut trie: LpmTrie<&mut MapData, K, V> = self
            .ebpf
            .map_mut(name)
            .ok_or(DatapathError::MissingMap(name))?
            .try_into()
            .map_err(|source| map_err(name, source))?;
        let stale: Vec<Key<K>> = trie
            .keys()
            .filter_map(Result::ok)
            .filter(|k| {
                !wanted
                    .iter()
                    .any(|(w, _)| w.prefix_len() == k.prefix_len() && w.data() == k.data())
            })
            .collect();
        for key in stale {
            absent_ok(trie.remove(&key), name)?;
        }
        for (key, info) in wanted {
            trie.insert(key, info, 0)
                .map_err(|source| map_err(name, source))?;
        }
        Ok(())
    }

    pub(super) fn entries<K: aya::Pod, V: aya::Pod>(
        &self,
        map: &'static str,
    ) -> Result<Vec<(K, V)>, DatapathError> {
        let data = self.ebpf.map(map).ok_or(DatapathError::MissingMap(map))?;
        // Typed first: a map of other sizes is an error, not garbage.
        let _: HashMap<_, K, V> = HashMap::try_from(data).map_err(|source| map_err(map, source))?;
        let fd = pins::map_data(data)
            .ok_or(DatapathError::MissingMap(map))?
            .fd()
            .as_fd();
        sys::map_entries(fd).map_err(|source| DatapathError::Walk { map, source })
    }
}
