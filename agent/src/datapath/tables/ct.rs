//! `CT4`, `CT6` (through [`CtTable`]) and `FRAG4`: tracked flows and
//! translated fragments (`weir_common::ct`, `ct6`, `frag`).

use std::os::fd::AsFd;

use aya::maps::HashMap;
use weir_common::frag::{FragEntry, FragKey};

use super::super::{
    Datapath, DatapathError, absent_ok,
    ct_table::{CtRecord, CtTable, Tracked},
    found, map_err, map_names, pins, sys,
};

impl Datapath {
    /// Every entry of `K`'s conntrack table (`CT4`, `CT6`).
    pub fn conntrack<K: CtTable>(&self) -> Result<Vec<Tracked<K>>, DatapathError> {
        Ok(self
            .entries::<K, K::Entry>(K::MAP)?
            .into_iter()
            .map(|(key, entry)| Tracked { key, entry })
            .collect())
    }

    /// Every `FRAG4` entry: datagrams whose first fragment was translated.
    pub fn fragments(&self) -> Result<Vec<(FragKey, FragEntry)>, DatapathError> {
        self.entries::<FragKey, FragEntry>(map_names::FRAG4)
    }

    /// Removes these entries of `K`'s table (absent ones are fine).
    pub fn remove_conntrack<K: CtTable>(&mut self, keys: &[K]) -> Result<(), DatapathError> {
        let mut map = self.hash_map::<K, K::Entry>(K::MAP)?;
        for key in keys {
            absent_ok(map.remove(key), K::MAP)?;
        }
        Ok(())
    }

    /// Removes a flow's entries (of `K`'s table) as they were read (`flow`), all or
    /// none: if a packet has touched any of them since, or a new flow has
    /// taken one of their tuples (a client port used again), they all
    /// stay. Returns whether they were removed.
    ///
    /// Each entry is taken out with its value in one step and compared
    /// then, so a packet can never land between the check and the
    /// removal unseen (a connection opened again on the tuple that
    /// moment would lose its entries, and its answers would meet none).
    /// What was taken from a flow found in use goes back, unless the
    /// datapath has written the tuple anew meanwhile.
    pub fn remove_flow_if_unchanged<K: CtTable>(
        &mut self,
        flow: &[Tracked<K>],
    ) -> Result<bool, DatapathError> {
        let ct = self
            .ebpf
            .map(K::MAP)
            .ok_or(DatapathError::MissingMap(K::MAP))?;
        let fd = pins::map_data(ct)
            .ok_or(DatapathError::MissingMap(K::MAP))?
            .fd()
            .as_fd();
        let take = |e: std::io::Error| DatapathError::Take {
            map: K::MAP,
            source: e,
        };
        // Read first: a flow in use stays without being touched at all.
        let map: HashMap<_, K, K::Entry> = HashMap::try_from(ct).map_err(|e| map_err(K::MAP, e))?;
        for f in flow {
            if let Some(now) = found(map.get(&f.key, 0), K::MAP)?
                && !f.entry.same_use(&now)
            {
                return Ok(false);
            }
        }
        let mut taken = Vec::with_capacity(flow.len());
        for f in flow {
            let Some(now) = sys::map_take::<K, K::Entry>(fd, &f.key).map_err(take)? else {
                continue;
            };
            taken.push((f.key, now));
            if !f.entry.same_use(&now) {
                // In use after all: what was taken goes back, unless the
                // datapath has made the tuple anew meanwhile.
                for (key, entry) in &taken {
                    sys::map_insert_new(fd, key, entry).map_err(take)?;
                }
                return Ok(false);
            }
        }
        Ok(true)
    }
}
