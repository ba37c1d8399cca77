//! End-to-end: the agent dies and comes back while traffic flows. The
//! links and maps are pinned, so the datapath never stops; a new agent
//! takes them over (same maps, its own programs swapped into the links).

use std::{process::Command, thread, time::Duration};
use weir::datapath::map_names::ALL as ALL_MAPS;

use weir_tests::{
    World,
    agent::Agent,
    sock::{self, Server, any, at},
    stream::{StreamReader, StreamServer},
    world::{EXT_IP, NODE_UPLINK_IP},
};

/// How long each phase of a transfer lasts: before the kill, with no agent
/// at all, after the restart.
const PHASE: Duration = Duration::from_secs(1);

#[test]
fn transfers_through_a_published_port_and_masquerade_survive_a_killed_agent() {
    let mut w = World::new().unwrap();
    w.add_container("web").unwrap();
    w.add_container("client").unwrap();
    let mut agent = Agent::start(&w, &[]);
    let web = agent.attach("weir", w.c("web"), "web", &["-p", "8080:5000"]);
    agent.attach("weir", w.c("client"), "client", &[]);
    let _served = StreamServer::start(w.c("web"), at(web, 5000)).unwrap();
    let _outside = StreamServer::start(&w.ext, at(EXT_IP, 6000)).unwrap();
    let inbound = StreamReader::start(&w.ext, at(NODE_UPLINK_IP, 8080)).unwrap();
    let outbound = StreamReader::start(w.c("client"), at(EXT_IP, 6000)).unwrap();

    thread::sleep(PHASE);
    agent.kill();
    let killed_at = (inbound.bytes(), outbound.bytes());
    thread::sleep(PHASE);
    let down = (
        inbound.bytes() - killed_at.0,
        outbound.bytes() - killed_at.1,
    );
    agent.restart();
    thread::sleep(PHASE);
    let (i, o) = (inbound.finish(), outbound.finish());
    eprintln!(
        "published port: {} bytes, {} while no agent ran, longest stall {:?}",
        i.bytes, down.0, i.longest_stall
    );
    eprintln!(
        "masquerade:     {} bytes, {} while no agent ran, longest stall {:?}",
        o.bytes, down.1, o.longest_stall
    );
    for (what, trace, while_down) in [("published port", &i, down.0), ("masquerade", &o, down.1)] {
        assert!(trace.error.is_none(), "{what}: {:?}", trace.error);
        assert!(
            while_down > 1_000_000,
            "{what}: {while_down} bytes with no agent"
        );
        assert!(
            trace.longest_stall < Duration::from_millis(500),
            "{what}: stalled {:?}",
            trace.longest_stall
        );
    }
    let log = agent.log_text();
    assert!(
        log.contains("created=0 rebuilt=0"),
        "every map reopened:\n{log}"
    );

    // New work after the restart goes through the new programs.
    agent.ok(&["publish", "web", "9090:5001"]);
    let _echo = Server::tcp(w.c("web"), any(5001)).unwrap();
    assert_eq!(
        sock::tcp_request(&w.ext, at(NODE_UPLINK_IP, 9090), b"after").unwrap(),
        b"after"
    );
}

/// bpftool's JSON output for `ARGS`.
fn bpftool(args: &[&str]) -> serde_json::Value {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn link_exists(id: u64) -> bool {
    Command::new("bpftool")
        .args(["link", "show", "id", &id.to_string()])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn counters_maps_pins_and_events_are_readable_and_cleanup_leaves_nothing() {
    let mut w = World::new().unwrap();
    w.add_container("web").unwrap();
    w.add_container("client").unwrap();
    let mut agent = Agent::start(&w, &["--metrics", "127.0.0.1:9464"]);
    let web = agent.attach("weir", w.c("web"), "web", &["-p", "8080:5000"]);
    agent.attach("weir", w.c("client"), "client", &[]);
    let _echo = Server::tcp(w.c("web"), any(5000)).unwrap();
    let _outside = Server::tcp(&w.ext, at(EXT_IP, 7000)).unwrap();
    for _ in 0..3 {
        sock::tcp_request(&w.ext, at(NODE_UPLINK_IP, 8080), b"in").unwrap();
    }
    sock::tcp_request(w.c("client"), at(EXT_IP, 7000), b"out").unwrap();
    // Unsolicited: ext calls a container's own address.
    let monitor = agent.monitor();
    let dropped = monitor.wait_for(
        Duration::from_secs(5),
        || {
            let _ = sock::connect_fails(&w.ext, at(web, 5000));
        },
        |e| e["reason"] == "unsolicited",
    );
    let dropped = dropped.expect("the drop shows in weir monitor");
    assert_eq!(dropped["dst"], format!("{web}:5000"));
    assert_eq!(dropped["interface"], "uplink0");

    check_stats(&agent, &w);
    let link_ids = check_maps(&agent, web);
    check_pins(&agent);

    // Cleanup: nothing of weir's is left.
    let root = agent.bpffs.clone();
    let out = agent.stop_and_clean_up();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("removed link weir0") && said.contains("removed pin"),
        "{said}"
    );
    assert!(!root.exists(), "bpffs root removed");
    assert!(
        link_ids.iter().all(|&id| !link_exists(id)),
        "every link detached"
    );
    let left = w.node.ip(&["-br", "link"]).unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(!left.contains("weir"), "{left}");
    assert!(sock::connect_fails(&w.ext, at(NODE_UPLINK_IP, 8080)));
}

/// `weir stats` and the Prometheus endpoint: per port, per network, per
/// reason.
fn check_stats(agent: &Agent, w: &World) {
    let stats = agent.json(&["stats"]);
    let port = &stats["ports"][0];
    assert_eq!(
        (port["host_port"].as_u64(), port["endpoint"].as_str()),
        (Some(8080), Some("web"))
    );
    assert_eq!(port["flows"], 3);
    assert!(port["bytes_in"].as_u64() > Some(0) && port["bytes_out"].as_u64() > Some(0));
    let weir_net = stats["networks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["network"] == "weir")
        .unwrap();
    assert!(weir_net["masquerade"]["flows"].as_u64() >= Some(1));
    let unsolicited = &stats["drops"][10];
    assert_eq!(
        (
            unsolicited["number"].as_u64(),
            unsolicited["reason"].as_str()
        ),
        (Some(11), Some("unsolicited"))
    );
    assert!(unsolicited["packets"].as_u64() >= Some(1));
    let table = agent.ok(&["stats"]);
    assert!(
        table.contains("0.0.0.0:8080/tcp") && table.contains("11 unsolicited"),
        "{table}"
    );

    // The same through Prometheus.
    let metrics = w
        .node
        .exec(
            "curl",
            &["-sS", "--max-time", "5", "http://127.0.0.1:9464/metrics"],
        )
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains("host_port=\"8080\",container_port=\"5000\"} 3\n"),
        "{metrics}"
    );
    assert!(metrics.contains("weir_drop_packets_total{reason=\"unsolicited\",number=\"11\"}"));
}

/// `weir maps`: the kernel's entries with names on them. Returns the ids
/// of the links.
fn check_maps(agent: &Agent, web: std::net::Ipv4Addr) -> Vec<u64> {
    // weir maps: the kernel's entries with names on them.
    let maps = agent.json(&["maps"]);
    assert_eq!(maps["published"][0]["endpoint"], "web");
    assert_eq!(maps["published"][0]["container"], format!("{web}:5000"));
    assert!(
        maps["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["indexed"] == true)
    );
    assert_eq!(
        maps["networks"][0]["flags"],
        serde_json::json!(["masquerade", "icc"])
    );
    let kinds: Vec<&str> = maps["conntrack"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"dnat") && kinds.contains(&"snat"),
        "{kinds:?}"
    );
    let links = maps["links"].as_array().unwrap();
    let names: Vec<&str> = links.iter().filter_map(|l| l["name"].as_str()).collect();
    for want in [
        "tc_from_uplink@uplink0",
        "tc_to_uplink@uplink0",
        "sock_connect4",
        "tc_from_container@weirv1",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let link_ids: Vec<u64> = links.iter().filter_map(|l| l["link_id"].as_u64()).collect();
    assert!(link_ids.iter().all(|&id| id > 0 && link_exists(id)));

    link_ids
}

/// bpftool reads the pins with names.
fn check_pins(agent: &Agent) {
    // bpftool reads the pins with names.
    let pin = |p: &str| agent.bpffs.join(p).to_str().unwrap().to_owned();
    let prog = bpftool(&["prog", "show", "pinned", &pin("progs/tc_from_container")]);
    assert_eq!(prog["name"], "tc_from_container");
    let ct = bpftool(&["map", "dump", "pinned", &pin("maps/CT4")]);
    let value = &ct[0]["formatted"]["value"];
    assert!(
        value.get("nat_daddr").is_some() && value.get("publication").is_some(),
        "{value}"
    );
    let link = bpftool(&[
        "link",
        "show",
        "pinned",
        &pin("links/tc_from_uplink@uplink0"),
    ]);
    assert_eq!(link["prog_id"], prog_id(&pin("progs/tc_from_uplink")));
}

fn prog_id(pin: &str) -> serde_json::Value {
    bpftool(&["prog", "show", "pinned", pin])["id"].clone()
}

#[test]
fn a_pinned_map_of_another_layout_is_rebuilt_and_said_so() {
    let mut w = World::new().unwrap();
    w.add_container("c1").unwrap();
    // An older NETWORKS4: a 20-byte value (no gateway MAC).
    let maps = std::path::Path::new("/sys/fs/bpf")
        .join(w.stem())
        .join("maps");
    std::fs::create_dir_all(&maps).unwrap();
    let old = maps.join("NETWORKS4");
    let made = Command::new("bpftool")
        .args([
            "map",
            "create",
            old.to_str().unwrap(),
            "type",
            "lpm_trie",
            "key",
            "8",
            "value",
            "20",
            "entries",
            "4096",
            "name",
            "NETWORKS4",
            "flags",
            "1",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut agent = Agent::start(&w, &[]);
    let log = agent.log_text();
    assert!(log.contains("pinned map has another layout"), "{log}");
    assert!(
        log.contains("map=\"NETWORKS4\"") || log.contains("map=NETWORKS4"),
        "{log}"
    );
    assert!(log.contains("value size 20 -> 24"), "{log}");
    let created = format!("created={} rebuilt=1", ALL_MAPS.len() - 1);
    assert!(log.contains(&created), "{log}");
    let ip = agent.attach("weir", w.c("c1"), "c1", &[]);
    assert!(
        weir_tests::world::ping(w.c("c1"), std::net::Ipv4Addr::new(10, 203, 0, 1)),
        "{ip} reaches its gateway"
    );
    agent.kill();
    agent.restart();
    let reused = format!("reused={} created=0 rebuilt=0", ALL_MAPS.len());
    assert!(agent.log_text().contains(&reused));
}
