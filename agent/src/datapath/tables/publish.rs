//! `PUBLISH4`, `PUBLISH6`, `OPEN_PORTS4`, `OPEN_PORTS6` and the allow
//! lists (`ALLOW_PORTS4`, `ALLOW_PORTS6`, `ALLOW4`): published ports and
//! who may reach them (`weir_common::publish`).

use std::net::Ipv4Addr;

use aya::maps::{
    MapData,
    lpm_trie::{Key, LpmTrie},
};
use weir_common::publish::{
    ALLOW_PREFIX, AllowKey, PublishKey, PublishKey6, PublishTarget, PublishTarget6,
};

use super::super::{Datapath, DatapathError, absent_ok, map_err, map_names};

impl Datapath {
    /// Publishes `key` to `target` in `PUBLISH4` (replacing what was there).
    pub fn insert_publish(
        &mut self,
        key: PublishKey,
        target: PublishTarget,
    ) -> Result<(), DatapathError> {
        self.hash_map::<PublishKey, PublishTarget>(map_names::PUBLISH4)?
            .insert(key, target, 0)
            .map_err(|source| map_err(map_names::PUBLISH4, source))
    }

    /// Removes `key` from `PUBLISH4` (absent is fine).
    pub fn remove_publish(&mut self, key: PublishKey) -> Result<(), DatapathError> {
        absent_ok(
            self.hash_map::<PublishKey, PublishTarget>(map_names::PUBLISH4)?
                .remove(&key),
            map_names::PUBLISH4,
        )
    }

    /// Publishes `key` to `target` in `PUBLISH6` (replacing what was there).
    pub fn insert_publish6(
        &mut self,
        key: PublishKey6,
        target: PublishTarget6,
    ) -> Result<(), DatapathError> {
        self.hash_map::<PublishKey6, PublishTarget6>(map_names::PUBLISH6)?
            .insert(key, target, 0)
            .map_err(|source| map_err(map_names::PUBLISH6, source))
    }

    /// Removes `key` from `PUBLISH6` (absent is fine).
    pub fn remove_publish6(&mut self, key: PublishKey6) -> Result<(), DatapathError> {
        absent_ok(
            self.hash_map::<PublishKey6, PublishTarget6>(map_names::PUBLISH6)?
                .remove(&key),
            map_names::PUBLISH6,
        )
    }

    /// The `PUBLISH4` entries.
    pub fn published(&self) -> Result<Vec<(PublishKey, PublishTarget)>, DatapathError> {
        self.entries(map_names::PUBLISH4)
    }

    /// The `PUBLISH6` entries.
    pub fn published6(&self) -> Result<Vec<(PublishKey6, PublishTarget6)>, DatapathError> {
        self.entries(map_names::PUBLISH6)
    }

    /// Makes `OPEN_PORTS4` hold exactly `open`: the container ports
    /// (container address, port, protocol) routed mode lets outsiders
    /// reach, with their network ids.
    pub fn set_open_ports(&mut self, open: &[(PublishKey, u32)]) -> Result<(), DatapathError> {
        self.set_hash(map_names::OPEN_PORTS4, open)
    }

    /// Makes `OPEN_PORTS6` hold exactly `open`: `set_open_ports` for the
    /// containers' IPv6 addresses.
    pub fn set_open_ports6(&mut self, open: &[(PublishKey6, u32)]) -> Result<(), DatapathError> {
        self.set_hash(map_names::OPEN_PORTS6, open)
    }

    /// Removes every `PUBLISH4` entry not in `keep` and `PUBLISH6` one not
    /// in `keep6` (left by an agent that
    /// stopped between a map write and saving its state).
    pub fn retain_published(
        &mut self,
        keep: &[PublishKey],
        keep6: &[PublishKey6],
    ) -> Result<(), DatapathError> {
        let stale: Vec<PublishKey> = self
            .published()?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !keep.contains(k))
            .collect();
        for key in stale {
            self.remove_publish(key)?;
        }
        let stale6: Vec<PublishKey6> = self
            .published6()?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| !keep6.contains(k))
            .collect();
        for key in stale6 {
            self.remove_publish6(key)?;
        }
        self.retain_port_stats(keep)?;
        self.retain_port_stats(keep6)
    }

    /// Makes `ALLOW_PORTS4` hold exactly `ports` and `ALLOW4` exactly
    /// `sources` (publication, source subnet, its prefix): `weir allow`;
    /// `ALLOW_PORTS6` the IPv6 side (`::`) of the ports on every address.
    pub fn set_allow(
        &mut self,
        ports: &[PublishKey],
        sources: &[(PublishKey, Ipv4Addr, u8)],
    ) -> Result<(), DatapathError> {
        let wanted: Vec<(PublishKey, u32)> = ports.iter().map(|k| (*k, 1)).collect();
        self.set_hash(map_names::ALLOW_PORTS4, &wanted)?;
        let wanted6: Vec<(PublishKey6, u32)> = ports
            .iter()
            .filter(|k| k.host_ip == [0; 4])
            .map(|k| {
                (
                    PublishKey6::new([0; 16], u16::from_be_bytes(k.port), k.proto),
                    1,
                )
            })
            .collect();
        self.set_hash(map_names::ALLOW_PORTS6, &wanted6)?;
        let lists: Vec<_> = sources
            .iter()
            .map(|(publication, addr, prefix)| {
                let key = AllowKey {
                    publication: *publication,
                    saddr: addr.octets(),
                };
                (Key::new(ALLOW_PREFIX + u32::from(*prefix), key), 1u32)
            })
            .collect();
        self.set_lpm(map_names::ALLOW4, &lists)
    }

    /// `ALLOW4`'s entries: (publication, source subnet, its prefix).
    pub fn allowed(&self) -> Result<Vec<(PublishKey, Ipv4Addr, u8)>, DatapathError> {
        let name = map_names::ALLOW4;
        let trie: LpmTrie<&MapData, AllowKey, u32> = self
            .ebpf
            .map(name)
            .ok_or(DatapathError::MissingMap(name))?
            .try_into()
            .map_err(|source| map_err(name, source))?;
        Ok(trie
            .keys()
            .filter_map(Result::ok)
            .map(|k| {
                let prefix = k.prefix_len().saturating_sub(ALLOW_PREFIX);
                let data = k.data();
                (
                    data.publication,
                    data.saddr.into(),
                    u8::try_from(prefix).unwrap_or(32),
                )
            })
            .collect())
    }
}
