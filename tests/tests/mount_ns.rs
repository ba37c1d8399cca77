//! End-to-end: the agent started the two ways people sandbox a daemon in a
//! network namespace. `ip netns exec` also gives it a mount namespace of
//! its own with `/sys` remounted (no bpffs, no cgroup2 there); `nsenter
//! --net` shares the caller's mounts. Both must serve published ports and
//! the node's `localhost:PORT`, pin where `bpftool` on the node finds them,
//! and keep forwarding across `kill -9` and a restart.

use std::process::Command;
use weir::datapath::map_names::ALL as ALL_MAPS;

use weir_tests::{
    World,
    agent::{Agent, Launch},
    sock::{Server, any},
    world::{EXT_IP, NODE_UPLINK_IP},
};

fn curl(ns: &weir_tests::Netns, url: &str) -> String {
    ns.curl(url).unwrap_or_else(|| panic!("curl {url} failed"))
}

fn bpftool(args: &[&str]) -> serde_json::Value {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .expect("bpftool");
    assert!(
        out.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("bpftool JSON")
}

/// Published from outside and from the node's localhost; pins read by
/// bpftool from the test's (the node's root) mount namespace.
fn serves(w: &World, agent: &Agent, http: &Server, calls: usize) {
    let body = curl(&w.ext, &format!("http://{NODE_UPLINK_IP}:8080/"));
    assert!(body.starts_with(&format!("hello {EXT_IP}:")), "{body:?}");
    let body = curl(&w.node, "http://127.0.0.1:8080/");
    assert!(body.starts_with("hello 10.203.0.1:"), "localhost: {body:?}");
    assert_eq!(http.received().len(), calls);
    let maps = agent.bpffs.join("maps/PUBLISH4");
    let entries = bpftool(&["map", "dump", "pinned", maps.to_str().unwrap()]);
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{entries}");
    for link in ["tc_from_uplink@uplink0", "sock_connect4"] {
        let pin = agent.bpffs.join("links").join(link);
        let info = bpftool(&["link", "show", "pinned", pin.to_str().unwrap()]);
        assert!(info["prog_id"].as_u64().is_some(), "{link}: {info}");
    }
}

fn survives_kill_and_restart(launch: Launch, reached: &str) {
    let mut w = World::new().unwrap();
    w.add_container("web").unwrap();
    let mut agent = Agent::launch(&w, launch, &[]);
    let status = agent.json(&["status"]);
    assert!(
        status["bpffs_reached"]
            .as_str()
            .is_some_and(|s| s.contains(reached)),
        "{status}"
    );
    agent.attach("weir", w.c("web"), "web", &["-p", "8080:80"]);
    let http = Server::http(w.c("web"), any(80)).unwrap();
    serves(&w, &agent, &http, 2);

    // No agent: the pinned links and maps go on forwarding.
    agent.kill();
    serves(&w, &agent, &http, 4);

    // A new agent started the same way takes the same pins over.
    agent.restart();
    assert!(
        agent.log_text().contains(&format!(
            "maps pinned reused={} created=0 rebuilt=0",
            ALL_MAPS.len()
        )),
        "{}",
        agent.log_text()
    );
    serves(&w, &agent, &http, 6);
    agent.ok(&["publish", "web", "9090:80"]);
    let body = curl(&w.ext, &format!("http://{NODE_UPLINK_IP}:9090/"));
    assert!(body.starts_with(&format!("hello {EXT_IP}:")), "{body:?}");

    // `--cleanup` from the same kind of namespace removes the host's pins.
    let out = agent.stop_and_clean_up();
    assert!(out.status.success(), "{out:?}");
    assert!(
        !agent.bpffs.exists(),
        "pins left at {}",
        agent.bpffs.display()
    );
}

#[test]
fn ip_netns_exec_pins_in_the_bpffs_of_the_namespace_it_was_started_from() {
    survives_kill_and_restart(Launch::IpNetnsExec, "started from");
}

#[test]
fn nsenter_net_pins_in_its_own_view_of_bpffs() {
    survives_kill_and_restart(Launch::NsenterNet, "this mount namespace's bpffs");
}

#[test]
fn pins_nowhere_the_node_sees_them_or_a_non_cgroup2_cgroup_refuse_to_start() {
    let w = World::new().unwrap();
    let tmp = std::env::temp_dir().join(format!("{}-notbpffs", w.stem()));
    let tmp_arg = tmp.to_str().unwrap();
    // `ip netns exec`: the namespace it was started from has no bpffs there.
    let err = Agent::fails_to_start(&w, Launch::IpNetnsExec, &["--bpffs", tmp_arg]);
    assert!(
        err.contains("no bpffs at") && err.contains("nsenter --net"),
        "{err}"
    );
    // `nsenter --net`: its own view, which is no bpffs either.
    let err = Agent::fails_to_start(&w, Launch::NsenterNet, &["--bpffs", tmp_arg]);
    assert!(err.contains("is not on a bpffs"), "{err}");
    let err = Agent::fails_to_start(&w, Launch::IpNetnsExec, &["--cgroup", "/tmp"]);
    assert!(
        err.contains("--cgroup /tmp is not a cgroup v2 directory"),
        "{err}"
    );
    assert!(!tmp.exists(), "a refused start made {}", tmp.display());
}
