//! The counters: per hook, per drop reason, per network (masquerade) and
//! per publication (of each family), each summed over the CPUs.

use aya::maps::{PerCpuArray, PerCpuHashMap, PerCpuValues};
use weir_common::{
    drop::DropReason,
    publish::{PublishKey, PublishKey6},
    stats::{Counter, Hook, NatCounters, PortCounters},
};

use super::{Datapath, DatapathError, absent_ok, map_err, map_names};

/// `BPF_NOEXIST`: insert only if the key is not there yet.
const BPF_NOEXIST: u64 = 1;

impl Datapath {
    /// Packets and bytes seen at `hook`, summed over the CPUs.
    pub fn hook_stats(&self, hook: Hook) -> Result<Counter, DatapathError> {
        self.counter(map_names::HOOK_STATS, hook.index())
    }

    /// Drop events the full `EVENTS` ring had no room for, summed over the
    /// CPUs.
    pub fn events_lost(&self) -> Result<u64, DatapathError> {
        Ok(self
            .counter(map_names::HOOK_STATS, Hook::EVENTS_LOST)?
            .packets)
    }

    /// Packets and bytes dropped for `reason`, summed over the CPUs.
    pub fn drop_stats(&self, reason: DropReason) -> Result<Counter, DatapathError> {
        self.counter(map_names::DROP_STATS, reason.number())
    }

    /// Network `id`'s masquerade counters, summed over the CPUs.
    pub fn nat_stats(&self, id: u32) -> Result<NatCounters, DatapathError> {
        let map = map_names::SNAT_STATS;
        let counters: PerCpuArray<_, NatCounters> = self
            .ebpf
            .map(map)
            .ok_or(DatapathError::MissingMap(map))?
            .try_into()
            .map_err(|source| map_err(map, source))?;
        let per_cpu = counters
            .get(&id, 0)
            .map_err(|source| map_err(map, source))?;
        Ok(per_cpu
            .iter()
            .fold(NatCounters::default(), |sum, c| sum.plus(*c)))
    }

    fn counter(&self, map: &'static str, index: u32) -> Result<Counter, DatapathError> {
        let counters: PerCpuArray<_, Counter> = self
            .ebpf
            .map(map)
            .ok_or(DatapathError::MissingMap(map))?
            .try_into()
            .map_err(|source| DatapathError::Map { map, source })?;
        let per_cpu = counters
            .get(&index, 0)
            .map_err(|source| DatapathError::Map { map, source })?;
        Ok(per_cpu
            .iter()
            .fold(Counter::default(), |sum, c| sum.plus(*c)))
    }

    fn port_map<K: PortKey>(
        &mut self,
    ) -> Result<PerCpuHashMap<&mut aya::maps::MapData, K, PortCounters>, DatapathError> {
        self.ebpf
            .map_mut(K::MAP)
            .ok_or(DatapathError::MissingMap(K::MAP))?
            .try_into()
            .map_err(|source| map_err(K::MAP, source))
    }

    /// Makes publication `key`'s counters exist (zero when new; kept when
    /// they are there already, as after an agent restart).
    pub fn ensure_port_stats<K: PortKey>(&mut self, key: K) -> Result<(), DatapathError> {
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| DatapathError::Cpus(e))?;
        let zero = PerCpuValues::try_from(vec![PortCounters::default(); cpus])
            .map_err(DatapathError::Cpus)?;
        match self.port_map::<K>()?.insert(key, zero, BPF_NOEXIST) {
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::EEXIST) =>
            {
                Ok(())
            }
            other => other.map_err(|source| map_err(K::MAP, source)),
        }
    }

    /// Removes publication `key`'s counters (absent is fine).
    pub fn remove_port_stats<K: PortKey>(&mut self, key: K) -> Result<(), DatapathError> {
        absent_ok(self.port_map::<K>()?.remove(&key), K::MAP)
    }

    /// Removes the counters of every publication not in `keep`.
    pub fn retain_port_stats<K: PortKey>(&mut self, keep: &[K]) -> Result<(), DatapathError> {
        let mut map = self.port_map::<K>()?;
        let stale: Vec<K> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !keep.contains(k))
            .collect();
        for key in stale {
            absent_ok(map.remove(&key), K::MAP)?;
        }
        Ok(())
    }

    /// Every publication's counters of `K`'s map, summed over the CPUs.
    pub fn port_stats<K: PortKey>(&self) -> Result<Vec<(K, PortCounters)>, DatapathError> {
        let counters: PerCpuHashMap<_, K, PortCounters> = self
            .ebpf
            .map(K::MAP)
            .ok_or(DatapathError::MissingMap(K::MAP))?
            .try_into()
            .map_err(|source| map_err(K::MAP, source))?;
        Ok(counters
            .iter()
            .filter_map(Result::ok)
            .map(|(key, per_cpu)| {
                let sum = per_cpu
                    .iter()
                    .fold(PortCounters::default(), |sum, c| sum.plus(*c));
                (key, sum)
            })
            .collect())
    }
}

/// A publication's key, and through it its counters' map: `PORT_STATS`
/// for `PUBLISH4`'s, `PORT_STATS6` for `PUBLISH6`'s.
pub trait PortKey: aya::Pod + PartialEq {
    const MAP: &'static str;
}

impl PortKey for PublishKey {
    const MAP: &'static str = map_names::PORT_STATS;
}

impl PortKey for PublishKey6 {
    const MAP: &'static str = map_names::PORT_STATS6;
}
