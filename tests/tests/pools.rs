//! End-to-end: address pools. `weir network create NAME` without
//! `--subnet` takes the first block of the agent's pools (Docker's by
//! default) that overlaps no weir network and no route or address of the
//! node: a VPN's route over the first block pushes it aside; `weir network
//! inspect` says which pool it came from; the network works. With
//! `--default-address-pool`, those pools alone, and a full pool is a clear
//! error that makes nothing; a bad pool is refused at start.

use std::process::Command;

use weir_tests::{
    World,
    agent::{Agent, weir_bin},
    world::EXT_IP,
};

fn subnet_of(agent: &Agent, name: &str) -> (String, serde_json::Value) {
    let net: serde_json::Value =
        serde_json::from_str(&agent.ok(&["network", "inspect", name])).unwrap();
    let subnet = net["ipam"]["subnet"]
        .as_str()
        .unwrap_or_else(|| panic!("{net}"))
        .to_owned();
    (subnet, net["pool"].clone())
}

#[test]
fn a_network_without_a_subnet_takes_the_first_free_pool_block() {
    let mut w = World::new().unwrap();
    w.add_container("c").unwrap();
    // A VPN's route over Docker's first block.
    w.node
        .ip(&["route", "add", "172.17.0.0/16", "via", &EXT_IP.to_string()])
        .unwrap();
    let agent = Agent::start(&w, &[]);
    agent.ok(&["network", "create", "auto"]);
    let (subnet, pool) = subnet_of(&agent, "auto");
    assert_eq!(subnet, "172.18.0.0/16", "the route's block is passed over");
    assert_eq!(pool, "base=172.18.0.0/16,size=16");
    agent.ok(&["network", "create", "auto2"]);
    assert_eq!(subnet_of(&agent, "auto2").0, "172.19.0.0/16");
    // A network given its subnet says no pool.
    agent.ok(&["network", "create", "given", "--subnet", "10.97.0.0/24"]);
    assert_eq!(subnet_of(&agent, "given").1, serde_json::Value::Null);
    // It works like any other.
    let ip = agent.attach("auto", w.c("c"), "c", &[]);
    assert_eq!(ip.to_string(), "172.18.0.2");
    let ping = w
        .c("c")
        .exec("ping", &["-c", "1", "-W", "2", "172.18.0.1"])
        .unwrap();
    assert!(ping.status.success(), "c to its gateway");
}

#[test]
fn configured_pools_alone_are_used_and_a_full_one_is_a_clear_error() {
    let w = World::new().unwrap();
    let agent = Agent::start(&w, &["--default-address-pool", "base=10.98.0.0/23,size=24"]);
    agent.ok(&["network", "create", "p1"]);
    agent.ok(&["network", "create", "p2"]);
    assert_eq!(subnet_of(&agent, "p1").0, "10.98.0.0/24");
    assert_eq!(subnet_of(&agent, "p2").0, "10.98.1.0/24");
    let err = agent.refused(&["network", "create", "p3"]);
    assert!(
        err.contains("no free subnet left in the address pools (base=10.98.0.0/23,size=24)"),
        "{err}"
    );
    let nets = agent.json(&["network", "ls"]);
    assert!(
        !nets.to_string().contains("\"p3\""),
        "a refused network was made: {nets}"
    );
    // Freed when its network goes.
    agent.ok(&["network", "rm", "p1"]);
    agent.ok(&["network", "create", "p3"]);
    assert_eq!(subnet_of(&agent, "p3").0, "10.98.0.0/24");

    let bad = Command::new(weir_bin())
        .args(["agent", "--default-address-pool", "base=10.98.0.0/23"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && said.contains("no size"), "{said}");
}
