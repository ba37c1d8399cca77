//! The programs' share of a connection: after the rounds, one more `TCP_CRR`
//! run of C in and out, over both families, with the kernel's BPF run-time
//! accounting on (`BPF_ENABLE_STATS`, the measure `bpftool prog` shows):
//! the run time of every program the agent pinned, per connection, beside
//! the kernel CPU per connection of that same run. It bounds what any
//! work on the programs can give: were they free, C's kernel CPU per
//! connection would fall by that much and no more, and B/C would be B's
//! figure over what is left.

use std::{collections::BTreeMap, fs, io, net::SocketAddr, path::Path};

use aya::{
    programs::ProgramInfo,
    sys::{Stats, enable_stats},
};

use super::{Options, bed::Bed, load};

/// One direction's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Share {
    pub direction: &'static str,
    /// The programs' run time per connection, microseconds.
    pub programs_us: f64,
    /// The kernel CPU per connection of the same run, microseconds (the
    /// programs' time is part of it).
    pub kernel_us: f64,
    /// Each program that ran: its name, its runs per connection and its
    /// nanoseconds per run.
    pub programs: Vec<(String, f64, f64)>,
}

/// Measures C (`bed`, whose agent pinned its programs under `progs`).
pub fn measure(bed: &Bed, progs: &Path, opts: &Options) -> io::Result<Vec<Share>> {
    // Run-time accounting is on while this descriptor is open.
    let _stats = enable_stats(Stats::RunTime).map_err(io::Error::other)?;
    let runs: [(&'static str, &crate::Netns, SocketAddr); 4] = [
        ("in", bed.ext(), bed.echo_target().into()),
        ("out", bed.container(), Bed::out_target().into()),
        ("IPv6 in", bed.ext(), bed.echo_target6()),
        ("IPv6 out", bed.container(), Bed::out_target6()),
    ];
    let mut shares = Vec::new();
    for (direction, ns, to) in runs {
        let before = run_times(progs)?;
        let r = load::crr(ns, to, opts.secs, opts.crr_workers);
        let after = run_times(progs)?;
        if r.connections == 0 {
            return Err(io::Error::other(format!("C: no connection {direction}")));
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "nanoseconds, runs and connections of a few seconds' run"
        )]
        let (programs_us, programs) = {
            let conns = r.connections as f64;
            let mut total = 0;
            let mut programs = Vec::new();
            for (name, (runs, ns)) in &after {
                let (runs0, ns0) = before.get(name).copied().unwrap_or_default();
                let (runs, ns) = (runs - runs0, ns - ns0);
                total += ns;
                if runs > 0 {
                    programs.push((name.clone(), runs as f64 / conns, ns as f64 / runs as f64));
                }
            }
            (total as f64 / 1e3 / conns, programs)
        };
        shares.push(Share {
            direction,
            programs_us,
            kernel_us: r.kernel_us,
            programs,
        });
    }
    Ok(shares)
}

/// The runs and run time (ns) so far of every program pinned in `progs`,
/// by its pin's name.
fn run_times(progs: &Path) -> io::Result<BTreeMap<String, (u64, u128)>> {
    let mut times = BTreeMap::new();
    for entry in fs::read_dir(progs)? {
        let entry = entry?;
        let info = ProgramInfo::from_pin(entry.path()).map_err(io::Error::other)?;
        times.insert(
            entry.file_name().to_string_lossy().into_owned(),
            (info.run_count(), info.run_time().as_nanos()),
        );
    }
    Ok(times)
}

/// The figures as the report prints them: per direction, the programs'
/// time, the kernel CPU of the same run, their share, and what B/C would
/// be were the programs free: B's median over C's median less the programs' time.
pub fn text(s: &mut String, r: &super::Results) {
    use std::fmt::Write as _;
    if r.share.is_empty() {
        return;
    }
    let cpu = |id: &str, key: &str| {
        r.metrics
            .iter()
            .find(|m| m.id == id)
            .and_then(|m| m.median(key))
    };
    let _ = writeln!(
        s,
        "\nWeir's programs' share of C's connections: one more TCP_CRR run of {} s each \
         way after the rounds, with the kernel's BPF run-time accounting on; the run \
         time of every program the agent pinned, per connection, against the kernel \
         CPU per connection of the same run. Were the programs free, C's kernel CPU \
         would fall by their time and no more: the last column is B's median kernel \
         CPU per connection over C's less that time.\n",
        r.options.secs
    );
    s.push_str(
        "| connections | programs, us per connection | kernel CPU, us per connection | share | B/C were the programs free |\n\
         |---|--:|--:|--:|--:|\n",
    );
    for sh in &r.share {
        let id = match sh.direction {
            "in" => Some("crr_in_cpu"),
            "out" => Some("crr_out_cpu"),
            "IPv6 in" => Some("crr6_in_cpu"),
            "IPv6 out" => Some("crr6_out_cpu"),
            _ => None,
        };
        let bound = id
            .and_then(|id| Some((cpu(id, "B")?, cpu(id, "C")?)))
            .map_or_else(
                || "-".to_owned(),
                |(b, c)| format!("{:.2}", b / (c - sh.programs_us)),
            );
        let _ = writeln!(
            s,
            "| {} | {:.2} | {:.2} | {:.0}% | {bound} |",
            sh.direction,
            sh.programs_us,
            sh.kernel_us,
            100.0 * sh.programs_us / sh.kernel_us
        );
    }
    s.push_str(
        "\nBy program, in the same runs: runs per connection, and nanoseconds per run.\n\n\
         | connections | program | runs per connection | ns per run | us per connection |\n\
         |---|---|--:|--:|--:|\n",
    );
    for sh in &r.share {
        for (name, runs, ns) in &sh.programs {
            let _ = writeln!(
                s,
                "| {} | {name} | {runs:.1} | {ns:.0} | {:.2} |",
                sh.direction,
                runs * ns / 1e3
            );
        }
    }
}
