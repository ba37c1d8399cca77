//! The eBPF datapath as the agent sees it: the embedded object and loading
//! (here), pins and their layouts (`pins`, `layout`, `sys`), attaching
//! (`attach`), and typed handles on its maps (`tables`, `counters`).

mod attach;
mod counters;
mod ct_table;
mod dump;
mod layout;
mod pins;
mod sys;
mod tables;

use std::{collections::BTreeMap, io, path::PathBuf};

pub use aya;
use aya::{
    Ebpf,
    maps::{HashMap, MapError},
    pin::PinError,
    programs::{CgroupSockAddr, ProgramError, SchedClassifier},
};
use weir_common::stats::Hook;

pub use self::{
    attach::XdpChoice,
    ct_table::{CtFlow, CtFlow6, CtRecord, CtTable, Tracked},
    dump::RawMaps,
    layout::Layout,
    pins::{MapOrigin, PinDirs},
    tables::no_ipv4,
};

/// The datapath object, built by `build.rs` from `datapath-ebpf/`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/weir-datapath"));

/// Map names, as declared in `datapath-ebpf/src/maps.rs`: each written
/// once, in the order they are pinned.
pub mod map_names {
    macro_rules! names {
        ($($name:ident),+ $(,)?) => {
            $(pub const $name: &str = stringify!($name);)+
            /// Every map, in the order they are pinned.
            pub const ALL: &[&str] = &[$($name),+];
        };
    }

    names![
        HOOK_STATS,
        DROP_STATS,
        ENDPOINTS,
        EP_BY_IP4,
        PUBLISH4,
        HOST_ADDRS4,
        CT4,
        FRAG4,
        CONFIG,
        SOCK_RNAT4,
        NETWORKS4,
        UPLINKS,
        SNAT_STATS,
        OPEN_PORTS4,
        PORT_STATS,
        EVENTS,
        NETWORKS6,
        ENDPOINTS6,
        EP_BY_IP6,
        SOCK_RNAT6,
        HOST_ADDRS6,
        CT6,
        UPLINKS6,
        PUBLISH6,
        TAIL_CALLS,
        OPEN_PORTS6,
        SOCK_RNAT66,
        PORT_STATS6,
        ALLOW_PORTS4,
        ALLOW4,
        ALLOW_PORTS6,
        CLUSTER4,
        CLUSTER6,
    ];
}

/// The cgroup `sock_addr` programs: the node's own sockets to published
/// ports. Their attach types come from their ELF sections.
pub const SOCK_PROGRAMS: &[&str] = &[
    "sock_connect4",
    "sock_sendmsg4",
    "sock_recvmsg4",
    "sock_peername4",
    "sock_connect6",
    "sock_sendmsg6",
    "sock_recvmsg6",
    "sock_peername6",
];

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("loading the eBPF object")]
    Load(#[from] aya::EbpfError),
    #[error("the eBPF object has no program `{0}`")]
    MissingProgram(&'static str),
    #[error("the eBPF object has no map `{0}`")]
    MissingMap(&'static str),
    #[error("program `{program}`")]
    Program {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("attaching `{program}` to {interface}")]
    Attach {
        program: &'static str,
        interface: String,
        #[source]
        source: ProgramError,
    },
    #[error("pinning `{name}` at {path}")]
    Pin {
        name: String,
        path: String,
        #[source]
        source: PinError,
    },
    #[error("{path}")]
    PinFile {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("reading the entries of map `{map}`")]
    Walk {
        map: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("taking an entry out of map `{map}`")]
    Take {
        map: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("reading the layout of map `{map}`")]
    Layout {
        map: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("link `{name}`")]
    Link {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("opening cgroup {path}")]
    Cgroup {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("counting the CPUs")]
    Cpus(#[source] io::Error),
    #[error("reading this network namespace's cookie")]
    NetnsCookie(#[source] io::Error),
    #[error("map `{map}`")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
}

/// A loaded datapath: every program verified and loaded into the kernel,
/// maps created or reopened. Dropping it closes its descriptors: what is
/// pinned (with [`Datapath::open`]) stays attached and keeps forwarding;
/// what is not is detached and freed.
pub struct Datapath {
    ebpf: Ebpf,
    /// Where links are pinned; `None`: they are not ([`Datapath::load`]).
    links_dir: Option<PathBuf>,
    /// Every attachment, by its pin name (`attach::link_name`).
    links: BTreeMap<String, attach::Held>,
}

impl Datapath {
    /// Loads the embedded object and every program in it, with new maps
    /// and nothing pinned (for tests that drive the programs directly).
    pub fn load() -> Result<Self, DatapathError> {
        Self::with_programs(Ebpf::load(OBJECT)?, None)
    }

    /// Loads every program of `ebpf`; links go to `links_dir` if given.
    fn with_programs(mut ebpf: Ebpf, links_dir: Option<PathBuf>) -> Result<Self, DatapathError> {
        for hook in Hook::TC {
            let program = hook.program();
            classifier(&mut ebpf, program)?
                .load()
                .map_err(|source| DatapathError::Program { program, source })?;
        }
        let program = Hook::XdpFromUplink.program();
        xdp_program(&mut ebpf, program)?
            .load()
            .map_err(|source| DatapathError::Program { program, source })?;
        for &program in SOCK_PROGRAMS {
            sock_program(&mut ebpf, program)?
                .load()
                .map_err(|source| DatapathError::Program { program, source })?;
        }
        // The programs the hooks hand packets to, entered in `TAIL_CALLS`
        // at their index (a pinned map the attached programs share: a new
        // agent's entries serve the programs an older one attached).
        for (index, &program) in (0u32..).zip(Hook::TAIL_PROGRAMS) {
            let tail = classifier(&mut ebpf, program)?;
            tail.load()
                .map_err(|source| DatapathError::Program { program, source })?;
            let fd = tail
                .fd()
                .map_err(|source| DatapathError::Program { program, source })?
                .try_clone()
                .map_err(|source| DatapathError::PinFile {
                    path: program.to_owned(),
                    source,
                })?;
            let mut tails: aya::maps::ProgramArray<&mut aya::maps::MapData> = ebpf
                .map_mut(map_names::TAIL_CALLS)
                .ok_or(DatapathError::MissingMap(map_names::TAIL_CALLS))?
                .try_into()
                .map_err(|source| map_err(map_names::TAIL_CALLS, source))?;
            tails
                .set(index, &fd, 0)
                .map_err(|source| map_err(map_names::TAIL_CALLS, source))?;
        }
        Ok(Self {
            ebpf,
            links_dir,
            links: BTreeMap::new(),
        })
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

    /// Takes the `EVENTS` ring buffer out of the object, for its one
    /// reader (it stays pinned).
    pub fn take_events(&mut self) -> Result<aya::maps::RingBuf<aya::maps::MapData>, DatapathError> {
        let map = self
            .ebpf
            .take_map(map_names::EVENTS)
            .ok_or(DatapathError::MissingMap(map_names::EVENTS))?;
        aya::maps::RingBuf::try_from(map).map_err(|source| map_err(map_names::EVENTS, source))
    }

    /// The underlying aya object, for tests that drive programs with
    /// `BPF_PROG_TEST_RUN` and seed maps directly.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

/// A delete of a key that is not there is not an error here.
fn absent_ok(result: Result<(), MapError>, map: &'static str) -> Result<(), DatapathError> {
    found(result, map).map(drop)
}

/// A lookup's value, `None` for a key that is not there (whichever way
/// the kernel or aya says so).
fn found<V>(result: Result<V, MapError>, map: &'static str) -> Result<Option<V>, DatapathError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(MapError::KeyNotFound) => Ok(None),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
            Ok(None)
        }
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

fn xdp_program<'a>(
    ebpf: &'a mut Ebpf,
    program: &'static str,
) -> Result<&'a mut aya::programs::Xdp, DatapathError> {
    ebpf.program_mut(program)
        .ok_or(DatapathError::MissingProgram(program))?
        .try_into()
        .map_err(|source| DatapathError::Program { program, source })
}

fn sock_program<'a>(
    ebpf: &'a mut Ebpf,
    program: &'static str,
) -> Result<&'a mut CgroupSockAddr, DatapathError> {
    ebpf.program_mut(program)
        .ok_or(DatapathError::MissingProgram(program))?
        .try_into()
        .map_err(|source| DatapathError::Program { program, source })
}
