//! End-to-end: a container on several networks (`weir connect`, Docker's
//! `network connect`). Its further interface (`eth1`, endpoint
//! `NAME.NETWORK`) is judged as its network's; the container talks to
//! both networks, which stay apart; the default route and the published
//! ports stay with the first; refusals say why; it survives a restart;
//! `weir disconnect` takes it off; `weir attach`/`weir run` take
//! `--network` more than once, and `weir detach` takes every interface.

use weir_common::drop::DropReason;
use weir_tests::{
    Netns, World,
    agent::Agent,
    sock::{Server, any},
    world::{EXT_IP, NODE_UPLINK_IP},
};

/// An echo answered within 3 s (a first contact waits for ARP).
fn ping(from: &Netns, to: &str) -> bool {
    echo(from, to, "3")
}

/// An echo not answered within a second.
fn no_ping(from: &Netns, to: &str) -> bool {
    !echo(from, to, "1")
}

fn echo(from: &Netns, to: &str, wait: &str) -> bool {
    from.exec("ping", &["-c", "1", "-W", wait, to])
        .is_ok_and(|o| o.status.success())
}

fn out(ns: &Netns, cmd: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&ns.exec(cmd, args).unwrap().stdout).into_owned()
}

#[test]
fn a_container_on_two_networks_talks_to_both_and_keeps_its_first_route() {
    let mut w = World::new().unwrap();
    for c in ["x", "y", "z", "v"] {
        w.add_container(c).unwrap();
    }
    let mut agent = Agent::start(&w, &[]);
    agent.ok(&["network", "create", "front", "--subnet", "10.71.1.0/24"]);
    agent.ok(&["network", "create", "back", "--subnet", "10.71.2.0/24"]);
    agent.attach("front", w.c("x"), "x", &[]);
    agent.attach("back", w.c("y"), "y", &[]);
    agent.attach("front", w.c("z"), "z", &["-p", "8097:80"]);
    let said = agent.ok(&["connect", "back", "z"]);
    assert_eq!(said.trim(), "z.back 10.71.2.3");
    assert!(out(w.c("z"), "ip", &["-o", "-4", "addr", "show", "eth1"]).contains("10.71.2.3/24"));
    let default = out(w.c("z"), "ip", &["route", "show", "default"]);
    assert!(
        default.contains("10.71.1.1") && default.contains("eth0"),
        "{default}"
    );

    // Both networks from z; x and y stay apart.
    assert!(ping(w.c("z"), "10.71.1.2"), "z to x");
    assert!(ping(w.c("z"), "10.71.2.2"), "z to y");
    let isolation = agent.drops(DropReason::Isolation.number());
    assert!(no_ping(w.c("x"), "10.71.2.2"), "x reached y");
    assert!(agent.drops(DropReason::Isolation.number()) > isolation);
    // Its published port is still its first interface's.
    let http = Server::http(w.c("z"), any(80)).unwrap();
    let body = w
        .ext
        .curl(&format!("http://{NODE_UPLINK_IP}:8097/"))
        .unwrap();
    assert!(body.starts_with(&format!("hello {EXT_IP}:")), "{body}");
    assert_eq!(http.peer_ips(), vec![EXT_IP]);

    refusals_say_why(&agent);
    let ps = agent.json(&["ps"]);
    let further = ps
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "z.back")
        .unwrap_or_else(|| panic!("{ps}"));
    assert_eq!(
        (&further["network"], &further["primary"]),
        (&"back".into(), &"z".into())
    );

    // A restart keeps it.
    agent.kill();
    agent.restart();
    assert!(ping(w.c("z"), "10.71.2.2"), "z to y after a restart");

    // Disconnected: eth1 gone, y out of reach.
    agent.ok(&["disconnect", "back", "z"]);
    assert!(w.c("z").exec("ip", &["link", "show", "eth1"]).is_err());
    assert!(
        no_ping(w.c("z"), "10.71.2.2"),
        "z reached y after disconnect"
    );
    assert!(ping(w.c("z"), "10.71.1.2"), "z lost its first network");

    // `--network` more than once; detach takes every interface.
    let path = w.c("v").path();
    agent.ok(&[
        "attach",
        "front",
        "--netns",
        path.to_str().unwrap(),
        "--name",
        "v",
        "--network",
        "back",
    ]);
    assert!(out(w.c("v"), "ip", &["-o", "-4", "addr", "show", "eth1"]).contains("10.71.2."));
    agent.ok(&["detach", "v"]);
    let ps = agent.ok(&["ps"]);
    assert!(!ps.contains("v.back") && !ps.contains("\nv "), "{ps}");
    let run = agent.ok(&[
        "run",
        "--name",
        "r",
        "--network",
        "front",
        "--network",
        "back",
        "--",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
    ]);
    assert!(
        run.contains("eth0")
            && run.contains("10.71.1.")
            && run.contains("eth1")
            && run.contains("10.71.2."),
        "{run}"
    );
    assert!(
        !agent.ok(&["ps"]).contains("r.back"),
        "weir run left r.back"
    );
}

fn refusals_say_why(agent: &Agent) {
    for (args, why) in [
        (&["connect", "back", "z"][..], "already on network `back`"),
        (&["connect", "front", "z"][..], "already on network `front`"),
        (&["disconnect", "front", "z"][..], "first network"),
        (
            &["connect", "front", "z.back"][..],
            "further interface of `z`",
        ),
        (&["disconnect", "back", "x"][..], "not connected"),
        (&["connect", "nowhere", "z"][..], "not found"),
    ] {
        let err = agent.refused(args);
        assert!(err.contains(why), "{args:?}: {err}");
    }
}
