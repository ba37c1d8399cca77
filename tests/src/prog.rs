//! `BPF_PROG_TEST_RUN` on the real datapath programs: load the object the
//! agent embeds, seed its maps, run a program on a frame, and look at the
//! verdict, the bytes that came out and the maps.

use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
use weir::datapath::Datapath;

/// What a program did with one frame.
#[derive(Debug)]
pub struct Outcome {
    /// The program's return value (`TC_ACT_*` or `XDP_*`).
    pub verdict: i32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
}

/// tc verdicts, as the kernel numbers them.
pub const TC_ACT_OK: i32 = 0;
pub const TC_ACT_SHOT: i32 = 2;

/// A freshly loaded datapath with its own maps: tests never share state.
pub struct Harness {
    pub datapath: Datapath,
}

impl Harness {
    #[must_use]
    pub fn load() -> Self {
        Self {
            datapath: Datapath::load().expect("load the datapath object"),
        }
    }

    /// Runs the tc program `program` once on `frame`.
    #[must_use]
    pub fn run_tc(&mut self, program: &str, frame: &[u8]) -> Outcome {
        let prog: &SchedClassifier = self
            .datapath
            .ebpf_mut()
            .program(program)
            .unwrap_or_else(|| panic!("no program {program}"))
            .try_into()
            .expect("a tc program");
        // Room for programs that grow the frame.
        let mut out = vec![0u8; frame.len() + 256];
        let result = prog
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ..TestRunOptions::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        out.truncate(result.data_size_out as usize);
        Outcome {
            verdict: i32::try_from(result.return_value).unwrap_or_else(|_| {
                // tc verdicts are small signed numbers (TC_ACT_UNSPEC is -1).
                i32::from_ne_bytes(result.return_value.to_ne_bytes())
            }),
            frame: out,
        }
    }
}
