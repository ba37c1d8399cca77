//! End-to-end: the agent dies and comes back while traffic flows. The
//! links and maps are pinned, so the datapath never stops; a new agent
//! takes them over (same maps, its own programs swapped into the links).

use std::{thread, time::Duration};

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
