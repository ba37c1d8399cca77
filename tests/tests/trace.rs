//! End-to-end: `weir agent --trace ADDR`. The datapath records the traced
//! address's packets at every hook they meet, as they came and as they
//! left, with the verdict (aya-log records, read by the agent), and `weir
//! monitor` shows them; nobody else's packets are recorded.

use std::time::Duration;

use weir_tests::{
    World,
    agent::Agent,
    sock::{Server, any},
    world::{EXT_IP, NODE_UPLINK_IP},
};

#[test]
fn a_traced_clients_packets_are_shown_at_each_hook_with_their_translation() {
    let mut w = World::new().unwrap();
    w.add_container("web").unwrap();
    w.add_container("other").unwrap();
    let agent = Agent::start(&w, &["--trace", &EXT_IP.to_string()]);
    let ip = agent.attach("weir", w.c("web"), "web", &["-p", "8080:80"]);
    let other = agent.attach("weir", w.c("other"), "other", &[]);
    let _http = Server::http(w.c("web"), any(80)).unwrap();
    let monitor = agent.monitor();
    let curl = || {
        let _ = w.ext.curl(&format!("http://{NODE_UPLINK_IP}:8080/"));
    };
    let traced = |v: &serde_json::Value| v["event"] == "trace";

    // In through the uplink: found addressed to the node, left to the
    // container, redirected.
    let inbound = monitor
        .wait_for(Duration::from_secs(10), curl, |v| {
            traced(v) && v["hook"] == "tc_from_uplink" && v["reason"] == "redirect"
        })
        .expect("a trace record of the request at tc_from_uplink");
    assert_eq!(inbound["proto"], "tcp");
    assert_eq!(inbound["dst"], format!("{NODE_UPLINK_IP}:8080"));
    assert_eq!(inbound["nat_dst"], format!("{ip}:80"));
    assert!(
        inbound["src"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{EXT_IP}:"))
    );

    // The answer, from the container's veth: its address put back.
    let answer = monitor
        .wait_for(Duration::from_secs(10), curl, |v| {
            traced(v) && v["hook"] == "tc_from_container" && v["src"] == format!("{ip}:80")
        })
        .expect("a trace record of the answer at tc_from_container");
    assert_eq!(answer["nat_src"], format!("{NODE_UPLINK_IP}:8080"));
    assert_eq!(answer["endpoint"], "web");

    // A packet the datapath drops is recorded with its verdict too: ext
    // calling a container's own address, unsolicited.
    w.ext_routes_to_containers().unwrap();
    let dropped = monitor
        .wait_for(
            Duration::from_secs(10),
            || {
                let _ = w
                    .ext
                    .exec("ping", &["-c", "1", "-W", "1", &other.to_string()]);
            },
            |v| traced(v) && v["reason"] == "drop" && v["dst"] == other.to_string(),
        )
        .expect("a trace record of an unsolicited packet, dropped");
    assert_eq!(dropped["proto"], "icmp");

    // Nothing of anyone else's: the container's own traffic to its
    // gateway is not traced.
    let untraced = monitor.wait_for(
        Duration::from_secs(2),
        || {
            let _ = w
                .c("other")
                .exec("ping", &["-c", "1", "-W", "1", "10.203.0.1"]);
        },
        |v| {
            traced(v)
                && !v["src"].as_str().unwrap().starts_with(&EXT_IP.to_string())
                && !v["dst"].as_str().unwrap().starts_with(&EXT_IP.to_string())
        },
    );
    assert_eq!(untraced, None, "only the traced address's packets");
}
