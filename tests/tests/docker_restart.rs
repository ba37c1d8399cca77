//! End-to-end: weir under real dockerd when either of them goes away.
//! The agent is killed with `kill -9` while containers come and go and one
//! sends from its first instant; Docker restarts a container (a new veth)
//! and then restarts itself. One engine, one agent, one story in order.

use std::time::Duration;

use weir_common::drop::DropReason;
use weir_tests::{
    World,
    agent::Agent,
    docker::{Docker, HTTPD, IMAGE, curl, endpoint, ports_of},
    eventually,
    sock::{Server, at},
    world::{EXT_IP, NODE_UPLINK_IP},
};

fn run(docker: &Docker, args: &[&str]) {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    docker.ok(&all);
}

fn with_httpd<'a>(head: &[&'a str]) -> Vec<&'a str> {
    let mut v = head.to_vec();
    v.push(IMAGE);
    v.extend_from_slice(HTTPD);
    v
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one story in order: each step starts from what the last one left"
)]
fn docker_and_the_agent_each_come_and_go_without_a_hole_or_a_stale_port() {
    let w = World::new().unwrap();
    let mut docker = Docker::start(&w.node, w.stem(), "172.31.251.1/24");
    let socket = format!("unix://{}", docker.socket.display());
    let mut agent = Agent::start(&w, &["--docker", &socket]);
    let who = |port: u16| {
        curl(
            &w.ext,
            &format!("http://{NODE_UPLINK_IP}:{port}/cgi-bin/who"),
        )
    };

    docker.ok(&["network", "create", "--subnet", "10.92.1.0/24", "quiet"]);
    docker.ok(&["network", "create", "--subnet", "10.92.2.0/24", "loud"]);
    run(
        &docker,
        &[
            "--name",
            "listener",
            "--network",
            "quiet",
            IMAGE,
            "sh",
            "-c",
            "while true; do nc -u -l -p 80 -w 1; done",
        ],
    );
    let target = endpoint(&agent, "listener")["ip"]
        .as_str()
        .unwrap()
        .to_owned();
    run(&docker, &with_httpd(&["--name", "old", "-p", "8085:80"]));
    ports_of(&agent, "old", 1);
    assert!(who(8085).is_some_and(|b| b == format!("hello {EXT_IP}")));

    // The agent dies. The pinned datapath keeps serving what it knew.
    agent.kill();
    assert!(who(8085).is_some_and(|b| b == format!("hello {EXT_IP}")));

    // While it is dead: one container goes, one comes with a port, and one
    // on another network sends from its first instant (UDP to the
    // listener, which needs no answer to get through, and TCP out).
    docker.ok(&["rm", "-f", "old"]);
    // (PID 1 ignores SIGTERM: a stop takes its timeout, 10 s by default.)
    run(
        &docker,
        &with_httpd(&["--name", "late", "-p", "8086:80", "--stop-timeout", "1"]),
    );
    let server = Server::tcp(&w.ext, at(EXT_IP, 9102)).unwrap();
    let script = format!(
        "while true; do echo intruder | nc -u -w 1 {target} 80; echo hi | nc -w 1 {EXT_IP} 9102; done"
    );
    run(
        &docker,
        &[
            "--name",
            "eager",
            "--network",
            "loud",
            IMAGE,
            "sh",
            "-c",
            &script,
        ],
    );
    // Its bridge's guard holds it until weir enters it.
    let held = eventually(Duration::from_secs(5), || {
        (agent.drops(DropReason::PendingEndpoint.number()) >= 2).then_some(())
    });
    assert!(held.is_some(), "nothing held the eager container back");
    assert!(server.peer_ips().is_empty(), "{:?}", server.peer_ips());

    // A new agent picks up everything that changed while it was away. (The
    // node's nat table has a `DOCKER` chain meanwhile, as when dockerd
    // still writes its rules: the agent says how to stop that.)
    w.node
        .exec("iptables", &["-t", "nat", "-N", "DOCKER"])
        .unwrap();
    agent.restart();
    ports_of(&agent, "late", 1);
    ports_of(&agent, "old", 0);
    endpoint(&agent, "eager");
    assert!(who(8086).is_some_and(|b| b == format!("hello {EXT_IP}")));
    assert_eq!(
        who(8085),
        None,
        "the removed container's port still answers"
    );
    let out = eventually(Duration::from_secs(10), || {
        (server.peer_ips().len() >= 2).then_some(())
    });
    assert!(out.is_some(), "the eager container never got out");
    assert!(
        server.peer_ips().iter().all(|ip| *ip == NODE_UPLINK_IP),
        "ext saw {:?}",
        server.peer_ips()
    );
    let logs = docker.ok(&["logs", "listener"]);
    assert!(!logs.contains("intruder"), "crossed networks: {logs}");

    // `docker restart`: a new veth (and namespace); weir follows within a
    // second.
    let before = endpoint(&agent, "late")["host_if"].clone();
    docker.ok(&["restart", "-t", "0", "late"]);
    let moved = eventually(Duration::from_secs(1), || {
        let now = agent.endpoint_json("late")?["host_if"].clone();
        (now != before).then_some(())
    });
    assert!(moved.is_some(), "weir kept the old veth of `late`");
    assert!(who(8086).is_some_and(|b| b == format!("hello {EXT_IP}")));

    // Docker itself restarts (its containers stop): the agent needs no
    // restart, it follows the new engine.
    docker.ok(&["rm", "-f", "eager", "listener"]);
    docker.restart();
    ports_of(&agent, "late", 0);
    run(&docker, &with_httpd(&["--name", "after", "-p", "8087:80"]));
    ports_of(&agent, "after", 1);
    assert!(who(8087).is_some_and(|b| b == format!("hello {EXT_IP}")));
    assert!(
        agent.log_text().contains("following Docker"),
        "{}",
        agent.log_text()
    );
    // Taking weir off the node leaves Docker's bridges and veths alone.
    let veth = endpoint(&agent, "after")["host_if"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = agent.stop_and_clean_up();
    assert!(out.status.success(), "{out:?}");
    for link in ["docker0", veth.as_str()] {
        assert!(
            w.node.ip(&["link", "show", link]).is_ok(),
            "--cleanup removed Docker's {link}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    drop(agent);
    drop(docker);
}
