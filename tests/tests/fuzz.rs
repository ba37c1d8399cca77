//! The packet fuzzer's fixed run: tens of thousands of generated and
//! mutated frames through every datapath program, each run judged
//! against the invariants of [`weir_tests::fuzz`]. `cargo xtask fuzz`
//! is the long run.

use weir_tests::{
    fuzz::{self, Config},
    prog::node_ns,
};

#[test]
fn fuzzed_frames_keep_every_invariant() {
    let report = node_ns("fuzz").run(|| {
        fuzz::run(Config {
            frames: 20_000,
            seed: 0x5eed_2024,
        })
    });
    eprintln!("{report}");
    assert!(report.failures.is_empty(), "{report}");
    // The run went deep: every hook passed and dropped frames, and the
    // drops came for many reasons.
    for program in [
        "tc_from_container",
        "tc_to_uplink",
        "tc_from_uplink",
        "xdp_from_uplink",
    ] {
        let runs: u64 = report
            .verdicts
            .iter()
            .filter(|((p, _), _)| *p == program)
            .map(|(_, n)| n)
            .sum();
        assert!(runs > 1000, "{program} ran {runs} times");
    }
    assert!(report.drops.len() >= 8, "drops: {:?}", report.drops);
}
