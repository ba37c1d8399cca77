//! `cargo xtask bench --only-stream-profile`: where a bulk stream's CPU
//! goes in A (no NAT), B2 (nftables) and C (weir). Each in a world of its
//! own, the rounds' stream (writer on CPU 0 in ext, the container's reader
//! on CPU 1) runs while `perf record -a -g` samples every CPU; then `perf
//! report` lists the symbols that took at least 1% of the samples. Issue 40
//! asks for it on an Intel Xeon, where C's stream trailed nftables and no
//! NAT; the command runs on whichever CPU kind the machine has, and the
//! report names the machine.

use std::{
    fmt::Write as _,
    io,
    path::Path,
    process::{Command, Stdio},
};

use super::{Options, Setup, bed::Bed, load};

/// The setups profiled.
pub const SETUPS: [Setup; 3] = [Setup::NoNat, Setup::Nftables, Setup::Weir];

/// Samples under this share are left out of the report.
const PERCENT_LIMIT: &str = "1";

/// One setup's stream and its profile.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Profile {
    pub setup: &'static str,
    pub label: &'static str,
    pub gbit_per_sec: f64,
    /// (share of all samples in %, `[k]` or `[.]`, symbol), the largest first.
    pub top: Vec<(f64, String, String)>,
}

/// Whether the machine has a hardware PMU (`cycles`). A VM without one
/// leaves perf its `cpu-clock` timer, which cannot fire while interrupts
/// are off: the softirq work where the datapath runs is then charged to
/// the point that turns them on again (`_raw_spin_unlock_irqrestore`,
/// `handle_softirqs`), not to the functions that did it.
#[must_use]
pub fn has_pmu() -> bool {
    Command::new("perf")
        .args(["stat", "-x,", "-e", "cycles", "true"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("not supported")
        })
}

/// Profiles the stream of each of [`SETUPS`] for `opts.secs`, writing
/// perf's data under `dir`.
pub fn stream(opts: &Options, dir: &Path) -> io::Result<Vec<Profile>> {
    let version = Command::new("perf").arg("--version").output();
    if !version.is_ok_and(|o| o.status.success()) {
        return Err(io::Error::other(
            "perf does not run: `cargo xtask setup` installs it (Debian's linux-perf)",
        ));
    }
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for setup in SETUPS {
        eprintln!("bench: profiling {}'s stream", setup.key());
        let bed = Bed::new(setup)?;
        let data = dir.join(format!("perf-{}.data", setup.key()));
        bed.sink.pin(Some(1));
        // The stream warms up for 0.3 s before its measured seconds.
        let mut perf = Command::new("perf")
            .args(["record", "-a", "-g", "-q", "-o"])
            .arg(&data)
            .args(["--", "sleep", &format!("{:.1}", opts.secs + 0.3)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let st = load::stream(bed.ext(), bed.sink_target(), &bed.sink, opts.secs, Some(0));
        let recorded = perf.wait()?;
        if !recorded.success() || st.errors > 0 {
            return Err(io::Error::other(format!(
                "{}: perf record {recorded}, {} stream errors",
                setup.key(),
                st.errors
            )));
        }
        let report = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "-g",
                "none",
                "--sort",
                "sym",
            ])
            .args(["--percent-limit", PERCENT_LIMIT, "-i"])
            .arg(&data)
            .stderr(Stdio::null())
            .output()?;
        out.push(Profile {
            setup: setup.key(),
            label: setup.label(),
            gbit_per_sec: st.gbit_per_sec,
            top: parse(&String::from_utf8_lossy(&report.stdout)),
        });
    }
    Ok(out)
}

/// `perf report --stdio --sort sym`'s rows: `  12.34%  [k] name`.
fn parse(report: &str) -> Vec<(f64, String, String)> {
    report
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let share = words.next()?.strip_suffix('%')?.parse().ok()?;
            let kind = words.next()?.to_owned();
            let name = words.collect::<Vec<_>>().join(" ");
            (!name.is_empty()).then_some((share, kind, name))
        })
        .collect()
}

/// The report: the machine, then each setup's rate and symbols. `pmu`:
/// whether the samples came from a hardware counter ([`has_pmu`]).
#[must_use]
pub fn text(machine: &str, pmu: bool, secs: f64, profiles: &[Profile]) -> String {
    let mut s = format!(
        "Where a bulk stream's CPU goes (`cargo xtask bench --only-stream-profile`): \
         {machine}. One TCP stream through the published port (A: to the container's \
         address) for {secs} s, writer on CPU 0, reader on CPU 1, `perf record -a -g` \
         over both CPUs; the symbols with at least {PERCENT_LIMIT}% of all samples \
         (`perf report --no-children --sort sym`), `[k]` the kernel's, `[.]` user \
         space's.\n"
    );
    if !pmu {
        s.push_str(
            "\nThis machine has no hardware PMU (a VM's `cycles` event is not supported): \
             perf samples with its `cpu-clock` timer, which cannot fire while interrupts \
             are off, so the softirq work where the datapath and the stack's forwarding \
             run is charged to the points that turn interrupts on again \
             (`_raw_spin_unlock_irqrestore`, `handle_softirqs`), and the idle CPU shows as \
             `pv_native_safe_halt`. Read it for the shares of idle, copy and softirq, not \
             for the functions inside the softirq; those need a machine with a PMU.\n",
        );
    }
    for p in profiles {
        let _ = writeln!(
            s,
            "\n{}, {:.2} Gbit/s:\n\n| samples | | symbol |\n|--:|---|---|",
            p.label, p.gbit_per_sec
        );
        for (share, kind, name) in &p.top {
            let _ = writeln!(s, "| {share:.2}% | `{kind}` | `{name}` |");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfs_rows_are_read_and_its_comments_left() {
        let report = "# Samples: 12K of event 'cpu-clock'\n#\n\
                      # Overhead  Symbol\n\
                      \x20   12.50%  [k] copy_user_enhanced_fast_string\n\
                      \x20    1.02%  [.] weir_tests::bench::load::stream\n\n";
        let rows = parse(report);
        assert_eq!(
            rows,
            [
                (
                    12.5,
                    "[k]".to_owned(),
                    "copy_user_enhanced_fast_string".to_owned()
                ),
                (
                    1.02,
                    "[.]".to_owned(),
                    "weir_tests::bench::load::stream".to_owned()
                ),
            ]
        );
        let t = text(
            "AMD EPYC",
            false,
            2.0,
            &[Profile {
                setup: "C",
                label: "C: weir",
                gbit_per_sec: 20.0,
                top: rows,
            }],
        );
        assert!(t.contains("C: weir, 20.00 Gbit/s"), "{t}");
        assert!(t.contains("no hardware PMU"), "{t}");
        assert!(
            t.contains("| 12.50% | `[k]` | `copy_user_enhanced_fast_string` |"),
            "{t}"
        );
    }
}
