//! `cargo xtask test`: the whole gate, in the order that fails fastest.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use anyhow::bail;

use crate::cmd;

/// Prefix of every namespace the test bed makes (`tests/src/netns.rs`).
const TEST_NETNS_PREFIX: &str = "weirt-";

pub fn run(filter: Option<&str>, ebpf_toolchain: &str) -> anyhow::Result<()> {
    let stale = sweep_test_namespaces();
    if stale > 0 {
        eprintln!("test: removed {stale} namespaces left by an earlier, killed run");
    }
    cmd::run(cmd::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
    cmd::run(cmd::new("cargo").args([
        "clippy",
        "--workspace",
        "--exclude",
        "weir-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The eBPF crate is checked for the host, as the aya template does; its
    // real build (bpfel, build-std) happens in agent/build.rs.
    let pinned = format!("+{ebpf_toolchain}");
    cmd::run(cmd::new("cargo").args([
        &pinned,
        "clippy",
        "--package",
        "weir-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
        "-C",
        "panic=abort",
        "-Zpanic_abort_tests",
    ]))?;
    // The end-to-end tests drive the real `weir` binary.
    cmd::run(cmd::new("cargo").args(["build", "--package", "weir", "--bins"]))?;
    let mut test = cmd::new("cargo");
    test.args([
        "test",
        "--workspace",
        "--exclude",
        "weir-ebpf",
        "--no-fail-fast",
    ]);
    if let Some(f) = filter {
        test.args(["--", f]);
    }
    let (result, totals) = run_counting(&mut test);
    // One closing line for the whole run (cargo ends with doc-test runs that
    // often hold no test at all).
    println!(
        "tests: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    );
    // Every test process has exited: any test namespace still present is one
    // a teardown missed. That is a failure, even when the tests passed.
    let left = sweep_test_namespaces();
    result?;
    if left > 0 {
        bail!("the tests left {left} network namespaces behind (now removed)");
    }
    Ok(())
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Totals {
    /// Adds a libtest summary line (`test result: ok. 3 passed; 1 failed;
    /// 2 ignored; ...`); other lines are ignored.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match kind {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// Runs `cmd`, passing its stdout through while totalling libtest results.
fn run_counting(cmd: &mut Command) -> (anyhow::Result<()>, Totals) {
    let mut totals = Totals::default();
    eprintln!("+ {cmd:?}");
    let child = cmd.stdout(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (Err(e.into()), totals),
    };
    let stdout = child.stdout.take().expect("piped stdout");
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        println!("{line}");
        totals.add_line(&line);
    }
    let result = match child.wait() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(anyhow::anyhow!("cargo test failed: {status}")),
        Err(e) => Err(e.into()),
    };
    (result, totals)
}

/// Deletes what test-bed worlds of dead processes left: namespaces, and the
/// agents' bpffs and temporary directories (named like the namespaces;
/// the package tests' Debian roots are tmpfs mounts, unmounted first).
/// Returns how many namespaces it deleted.
fn sweep_test_namespaces() -> usize {
    let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    let list = cmd::stdout(cmd::new("ip").args(["netns", "list"]));
    let stale = stale_test_namespaces(&list, alive);
    for name in &stale {
        let _ = cmd::succeeds(cmd::new("ip").args(["netns", "del", name]));
    }
    for root in [Path::new("/sys/fs/bpf"), &std::env::temp_dir()] {
        let names: String = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned() + "\n")
            .collect();
        for name in stale_test_namespaces(&names, alive) {
            // A Debian root of the package's tests is a tmpfs mount.
            let _ = cmd::succeeds(cmd::new("umount").arg("-l").arg(root.join(&name)));
            let _ = std::fs::remove_dir_all(root.join(name));
        }
    }
    stale.len()
}

/// The test-bed namespaces in `ip netns list` output whose process is gone.
fn stale_test_namespaces(list: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| {
            name.strip_prefix(TEST_NETNS_PREFIX)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !alive(pid))
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_libtest_summaries() {
        let mut t = Totals::default();
        for line in [
            "test result: ok. 9 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s",
            "running 3 tests",
            "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        ] {
            t.add_line(line);
        }
        assert_eq!(
            t,
            Totals {
                passed: 11,
                failed: 1,
                ignored: 1
            }
        );
    }

    #[test]
    fn only_test_namespaces_of_dead_processes_are_stale() {
        let list =
            "weirt-100-0-node (id: 3)\nweirt-200-1-ext\nweirt-100-0-c1\nother-ns\nweirt-x-0-node\n";
        let stale = stale_test_namespaces(list, |pid| pid == 200);
        assert_eq!(stale, ["weirt-100-0-node", "weirt-100-0-c1"]);
    }
}
