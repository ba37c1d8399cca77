//! The eBPF datapath as the agent sees it: the embedded object, loading,
//! attaching, and typed reads of its maps.

use std::{collections::HashMap as StdHashMap, fs, io, net::Ipv4Addr, path::Path};

pub use aya;
use aya::{
    Ebpf,
    maps::{HashMap, MapError, PerCpuArray},
    pin::PinError,
    programs::{ProgramError, SchedClassifier, TcAttachType, tc::SchedClassifierLinkId},
};
use weir_common::{
    drop::DropReason,
    endpoint::{EndpointInfo, EndpointRef},
    stats::{Counter, Hook},
};

/// The datapath object, built by `build.rs` from `datapath-ebpf/`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/weir-datapath"));

/// Map names, as declared in `datapath-ebpf/src/maps.rs`.
pub mod map_names {
    pub const HOOK_STATS: &str = "HOOK_STATS";
    pub const DROP_STATS: &str = "DROP_STATS";
    pub const ENDPOINTS: &str = "ENDPOINTS";
    pub const EP_BY_IP4: &str = "EP_BY_IP4";
    /// Every map, in the order they are pinned.
    pub const ALL: &[&str] = &[HOOK_STATS, DROP_STATS, ENDPOINTS, EP_BY_IP4];
}

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("loading the eBPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the eBPF object has no program `{0}`")]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map `{0}`")]
    MissingMap(&'static str),
    #[error("program `{program}`: {source}")]
    Program {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("attaching `{program}` to {interface} failed: {source}")]
    Attach {
        program: &'static str,
        interface: String,
        #[source]
        source: ProgramError,
    },
    #[error("pinning map `{map}` at {path}: {source}")]
    Pin {
        map: &'static str,
        path: String,
        #[source]
        source: PinError,
    },
    #[error("clearing old pins in {path}: {source}")]
    Unpin {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("map `{map}`: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
}

/// A loaded datapath: every program verified and loaded into the kernel,
/// maps created. Dropping it detaches what it attached (links it did not pin)
/// and frees the maps.
pub struct Datapath {
    ebpf: Ebpf,
    /// tcx links of `tc_from_container`, by host-side interface name.
    container_links: StdHashMap<String, SchedClassifierLinkId>,
}

impl Datapath {
    /// Loads the embedded object and every program in it.
    pub fn load() -> Result<Self, DatapathError> {
        let mut ebpf = Ebpf::load(OBJECT)?;
        for hook in Hook::ALL {
            let program = hook.program();
            classifier(&mut ebpf, program)?
                .load()
                .map_err(|source| DatapathError::Program { program, source })?;
        }
        Ok(Self {
            ebpf,
            container_links: StdHashMap::new(),
        })
    }

    /// Pins every map under `dir` by its name, replacing pins an earlier
    /// agent left there, so `bpftool map dump pinned DIR/NAME` reads them.
    pub fn pin_maps(&self, dir: &Path) -> Result<(), DatapathError> {
        fs::create_dir_all(dir).map_err(|source| DatapathError::Unpin {
            path: dir.display().to_string(),
            source,
        })?;
        for &map in map_names::ALL {
            let path = dir.join(map);
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(DatapathError::Unpin {
                        path: path.display().to_string(),
                        source: e,
                    });
                }
                _ => {}
            }
            self.ebpf
                .map(map)
                .ok_or(DatapathError::MissingMap(map))?
                .pin(&path)
                .map_err(|source| DatapathError::Pin {
                    map,
                    path: path.display().to_string(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Attaches `tc_from_container` to tcx ingress of `interface` (the host
    /// side of a container veth), in the calling thread's network namespace.
    pub fn attach_from_container(&mut self, interface: &str) -> Result<(), DatapathError> {
        let program = Hook::FromContainer.program();
        let prog = classifier(&mut self.ebpf, program)?;
        if let Some(old) = self.container_links.remove(interface) {
            // A veth of the same name was replaced: its old link is defunct.
            let _ = prog.detach(old);
        }
        let link = prog
            .attach(interface, TcAttachType::Ingress)
            .map_err(|source| DatapathError::Attach {
                program,
                interface: interface.to_owned(),
                source,
            })?;
        self.container_links.insert(interface.to_owned(), link);
        Ok(())
    }

    /// Detaches `tc_from_container` from `interface` (a no-op when it is
    /// not attached; a link whose device is gone detaches quietly).
    pub fn detach_from_container(&mut self, interface: &str) -> Result<(), DatapathError> {
        let program = Hook::FromContainer.program();
        if let Some(link) = self.container_links.remove(interface) {
            let _ = classifier(&mut self.ebpf, program)?.detach(link);
        }
        Ok(())
    }

    /// Records an endpoint in `ENDPOINTS` and `EP_BY_IP4`.
    pub fn insert_endpoint(
        &mut self,
        ifindex: u32,
        ip: Ipv4Addr,
        mac: [u8; 6],
        network_id: u32,
    ) -> Result<(), DatapathError> {
        let info = EndpointInfo {
            ip: ip.octets(),
            mac,
            pad: [0; 2],
            network_id,
        };
        let reference = EndpointRef {
            ifindex,
            mac,
            pad: [0; 2],
        };
        self.hash_map::<u32, EndpointInfo>(map_names::ENDPOINTS)?
            .insert(ifindex, info, 0)
            .map_err(|source| map_err(map_names::ENDPOINTS, source))?;
        self.hash_map::<[u8; 4], EndpointRef>(map_names::EP_BY_IP4)?
            .insert(ip.octets(), reference, 0)
            .map_err(|source| map_err(map_names::EP_BY_IP4, source))
    }

    /// Removes every entry of the endpoint with address `ip` from
    /// `ENDPOINTS` and `EP_BY_IP4`. Works from the maps alone, so it also
    /// cleans up after a veth that is already gone.
    pub fn remove_endpoint(&mut self, ip: Ipv4Addr) -> Result<(), DatapathError> {
        let stale: Vec<u32> = self
            .endpoints()?
            .into_iter()
            .filter(|(_, info)| info.ip == ip.octets())
            .map(|(ifindex, _)| ifindex)
            .collect();
        let mut endpoints = self.hash_map::<u32, EndpointInfo>(map_names::ENDPOINTS)?;
        for ifindex in stale {
            absent_ok(endpoints.remove(&ifindex), map_names::ENDPOINTS)?;
        }
        absent_ok(
            self.hash_map::<[u8; 4], EndpointRef>(map_names::EP_BY_IP4)?
                .remove(&ip.octets()),
            map_names::EP_BY_IP4,
        )
    }

    /// The `ENDPOINTS` entries, by host-side ifindex.
    pub fn endpoints(&self) -> Result<Vec<(u32, EndpointInfo)>, DatapathError> {
        let map: HashMap<_, u32, EndpointInfo> = self
            .ebpf
            .map(map_names::ENDPOINTS)
            .ok_or(DatapathError::MissingMap(map_names::ENDPOINTS))?
            .try_into()
            .map_err(|source| map_err(map_names::ENDPOINTS, source))?;
        map.iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| map_err(map_names::ENDPOINTS, source))
    }

    fn hash_map<K: aya::Pod, V: aya::Pod>(
        &mut self,
        map: &'static str,
    ) -> Result<HashMap<&mut aya::maps::MapData, K, V>, DatapathError> {
        self.ebpf
            .map_mut(map)
            .ok_or(DatapathError::MissingMap(map))?
            .try_into()
            .map_err(|source| map_err(map, source))
    }

    /// Packets and bytes seen at `hook`, summed over the CPUs.
    pub fn hook_stats(&self, hook: Hook) -> Result<Counter, DatapathError> {
        self.counter(map_names::HOOK_STATS, hook.index())
    }

    /// Packets and bytes dropped for `reason`, summed over the CPUs.
    pub fn drop_stats(&self, reason: DropReason) -> Result<Counter, DatapathError> {
        self.counter(map_names::DROP_STATS, reason.number())
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

    /// The underlying aya object, for tests that drive programs with
    /// `BPF_PROG_TEST_RUN` and seed maps directly.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

/// A delete of a key that is not there is not an error here.
fn absent_ok(result: Result<(), MapError>, map: &'static str) -> Result<(), DatapathError> {
    match result {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(source) => Err(map_err(map, source)),
    }
}

fn map_err(map: &'static str, source: MapError) -> DatapathError {
    DatapathError::Map { map, source }
}

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    program: &'static str,
) -> Result<&'a mut SchedClassifier, DatapathError> {
    ebpf.program_mut(program)
        .ok_or(DatapathError::MissingProgram(program))?
        .try_into()
        .map_err(|source| DatapathError::Program { program, source })
}
