//! End-to-end: user rules (`weir allow`, Docker's `DOCKER-USER`). A
//! published port with a list lets in only its sources, from outside and
//! from containers (hairpin); anyone else is dropped as `not-allowed`,
//! counted and in `weir monitor`; the node's own connections are not
//! filtered; the list outlives the container behind the port and a
//! restart, and `weir allow rm` lifts it.

use std::time::Duration;

use weir_common::drop::DropReason;
use weir_tests::{
    World,
    agent::Agent,
    sock::{self, Server, any},
    world::{EXT_IP, NODE_UPLINK_IP},
};

#[test]
fn an_allow_list_lets_in_its_sources_alone() {
    let mut w = World::new().unwrap();
    for c in ["web", "nb", "web2"] {
        w.add_container(c).unwrap();
    }
    let mut agent = Agent::start(&w, &[]);
    agent.attach("weir", w.c("web"), "web", &["-p", "8098:80"]);
    let nb = agent.attach("weir", w.c("nb"), "nb", &[]);
    let _web = Server::banner(w.c("web"), any(80)).unwrap();
    let port = sock::at(NODE_UPLINK_IP, 8098);
    let reaches = |ns: &weir_tests::Netns| !sock::connect_fails(ns, port);
    assert!(reaches(&w.ext), "no list: everyone");

    let set = agent.ok(&["allow", "8098", "198.51.100.0/24"]);
    assert_eq!(set.trim(), "8098/tcp 198.51.100.0/24");
    let refused = agent.drops(DropReason::NotAllowed.number());
    let monitor = agent.monitor();
    assert!(!reaches(&w.ext), "ext is not on the list");
    assert!(agent.drops(DropReason::NotAllowed.number()) > refused);
    let event = monitor.wait_for(
        Duration::from_secs(5),
        || {
            let _ = sock::connect_fails(&w.ext, port);
        },
        |e| e["reason"] == "not-allowed",
    );
    let event = event.expect("no not-allowed event");
    assert!(
        event["src"]
            .as_str()
            .unwrap()
            .starts_with(&EXT_IP.to_string()),
        "{event}"
    );
    assert!(!reaches(w.c("nb")), "a neighbour is not on the list either");
    // The node's own connections are not filtered.
    assert!(reaches(&w.node), "the node was filtered");

    let both = format!("{EXT_IP}/32");
    agent.ok(&[
        "allow",
        "8098",
        "198.51.100.0/24",
        &both,
        &format!("{nb}/32"),
    ]);
    assert!(reaches(&w.ext), "ext is on the list now");
    assert!(reaches(w.c("nb")), "nb is on the list now");
    let ls = agent.ok(&["allow", "ls"]);
    assert!(
        ls.contains("8098/tcp") && ls.contains("203.0.113.2/32"),
        "{ls}"
    );

    // Another container takes the port: the list stays with the port.
    agent.ok(&["allow", "8098", "198.51.100.0/24"]);
    agent.ok(&["detach", "web"]);
    agent.attach("weir", w.c("web2"), "web2", &["-p", "8098:80"]);
    let _web2 = Server::banner(w.c("web2"), any(80)).unwrap();
    assert!(!reaches(&w.ext), "the list went with the container");
    agent.kill();
    agent.restart();
    assert!(!reaches(&w.ext), "the list went with the restart");
    agent.ok(&["allow", "rm", "8098"]);
    assert!(reaches(&w.ext), "rm lifts the list");
    for (args, why) in [
        (&["allow", "rm", "8098"][..], "no allow list"),
        (&["allow", "8099"][..], "at least one source"),
    ] {
        let err = agent.refused(args);
        assert!(err.contains(why), "{args:?}: {err}");
    }
}
