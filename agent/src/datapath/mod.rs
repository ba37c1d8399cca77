//! The eBPF datapath as the agent sees it: the embedded object, loading,
//! attaching, and typed reads of its maps.

pub use aya;
use aya::{
    Ebpf,
    maps::{MapError, PerCpuArray},
    programs::{ProgramError, SchedClassifier, TcAttachType},
};
use weir_common::{drop::DropReason, stats::Counter, stats::Hook};

/// The datapath object, built by `build.rs` from `datapath-ebpf/`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/weir-datapath"));

/// Map names, as declared in `datapath-ebpf/src/maps.rs`.
pub mod map_names {
    pub const HOOK_STATS: &str = "HOOK_STATS";
    pub const DROP_STATS: &str = "DROP_STATS";
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
        Ok(Self { ebpf })
    }

    /// Attaches `tc_from_container` to tcx ingress of `interface` (the host
    /// side of a container veth), in the calling thread's network namespace.
    pub fn attach_from_container(&mut self, interface: &str) -> Result<(), DatapathError> {
        let program = Hook::FromContainer.program();
        classifier(&mut self.ebpf, program)?
            .attach(interface, TcAttachType::Ingress)
            .map_err(|source| DatapathError::Attach {
                program,
                interface: interface.to_owned(),
                source,
            })?;
        Ok(())
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

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    program: &'static str,
) -> Result<&'a mut SchedClassifier, DatapathError> {
    ebpf.program_mut(program)
        .ok_or(DatapathError::MissingProgram(program))?
        .try_into()
        .map_err(|source| DatapathError::Program { program, source })
}
