//! The sandboxed demo (`cargo xtask demo`): a throw-away world of network
//! namespaces, the datapath loaded into its node, real traffic through it,
//! and what the kernel and bpftool show. Everything is removed at the end.

use std::{net::Ipv4Addr, process::Command};

use weir::datapath::Datapath;
use weir_common::{drop::DropReason, stats::Hook};
use weir_tests::{World, world};

const HOST_IF: &str = "vc1";
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const C_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

fn show(title: &str, program: &str, args: &[&str]) {
    println!("\n$ {program} {}    # {title}", args.join(" "));
    match Command::new(program).args(args).output() {
        Ok(out) => print!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => println!("({program}: {e})"),
    }
}

fn main() -> anyhow::Result<()> {
    let mut w = World::new()?;
    w.add_plain_container("c1", HOST_IF, HOST_IP, C_IP, 24)?;
    println!(
        "world: node {}, ext {}, container {}",
        w.node.name(),
        w.ext.name(),
        w.c("c1").name()
    );

    let dp = w.node.run(|| -> anyhow::Result<Datapath> {
        let mut dp = Datapath::load()?;
        dp.attach_from_container(HOST_IF)?;
        Ok(dp)
    })?;
    println!("datapath loaded; tc_from_container attached to tcx ingress of {HOST_IF} in the node");

    for _ in 0..3 {
        let ok = world::ping(w.c("c1"), HOST_IP);
        println!(
            "ping {C_IP} -> {HOST_IP}: {}",
            if ok { "answered" } else { "LOST" }
        );
    }
    let seen = dp.hook_stats(Hook::FromContainer)?;
    let dropped = dp.drop_stats(DropReason::Malformed)?;
    println!(
        "HOOK_STATS[from_container]: {} packets, {} bytes; DROP_STATS[malformed]: {} packets",
        seen.packets, seen.bytes, dropped.packets
    );

    show(
        "the loaded program",
        "bpftool",
        &["prog", "show", "name", "tc_from_container"],
    );
    show(
        "its tcx link (bpftool 7.1 prints tcx as type 11)",
        "bpftool",
        &["link", "show"],
    );
    show(
        "slot 0 (from_container) of the per-CPU counters, with BTF field names",
        "bpftool",
        &[
            "map",
            "lookup",
            "name",
            "HOOK_STATS",
            "key",
            "0",
            "0",
            "0",
            "0",
        ],
    );

    drop(dp);
    let names = w.namespaces();
    drop(w);
    let left: Vec<_> = world::all_namespaces()
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    println!(
        "\ntorn down: {} namespaces removed, {} left",
        names.len(),
        left.len()
    );
    Ok(())
}
