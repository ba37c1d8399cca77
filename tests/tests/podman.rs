//! End-to-end: real Podman (4.3, CNI backend) in the node, with `weir-cni`
//! as its network plugin and one agent. `podman run --network W -p` with
//! nothing else changed: a published port from outside (the container sees
//! the client) and from the node's localhost, egress as the node, two CNI
//! networks isolated, `podman rm -f` leaving no publication, no netfilter
//! rule in the node.

use std::time::Duration;

use weir_tests::{
    World,
    agent::{Agent, weir_bin},
    docker::{HTTPD, curl},
    eventually,
    podman::{IMAGE, Podman},
    sock::{Server, at},
    world::{self, EXT_IP, NODE_UPLINK_IP},
};

#[test]
fn podman_runs_on_weir_with_nothing_else_changed() {
    let w = World::new().unwrap();
    let agent = Agent::start(&w, &[]);
    agent.ok(&["network", "create", "front", "--subnet", "10.78.0.0/24"]);
    agent.ok(&["network", "create", "back", "--subnet", "10.78.1.0/24"]);
    let conflists = ["front", "back"].map(|n| agent.ok(&["cni", "config", n]));
    let plugin = weir_bin().with_file_name("weir-cni");
    let podman = Podman::new(&w.node, w.stem(), &plugin, &conflists);

    let mut run = vec![
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "front",
        "-p",
        "8080:80",
        IMAGE,
    ];
    run.extend_from_slice(HTTPD);
    podman.ok(&run);
    let web = agent
        .endpoint_json("web")
        .unwrap_or_else(|| panic!("no endpoint web:\n{}", agent.log_text()));
    assert_eq!(web["owner"]["kind"], "cni");
    let web_ip = web["ip"].as_str().unwrap().to_owned();
    assert_eq!(agent.ok(&["port", "web"]), "80/tcp -> 0.0.0.0:8080\n");

    // From outside, the container sees the client; from the node's
    // localhost too (conmon holds 8080 and gets nothing).
    let who = |ns, host: &str| curl(ns, &format!("http://{host}:8080/cgi-bin/who"));
    assert_eq!(
        who(&w.ext, &NODE_UPLINK_IP.to_string()).as_deref(),
        Some(&*format!("hello {EXT_IP}"))
    );
    assert_eq!(
        who(&w.node, "127.0.0.1").as_deref(),
        Some("hello 10.78.0.1")
    );

    // Out as the node.
    let server = Server::tcp(&w.ext, at(EXT_IP, 9105)).unwrap();
    podman.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        &format!("echo hi | nc -w 3 {EXT_IP} 9105"),
    ]);
    assert_eq!(server.peer_ips(), vec![NODE_UPLINK_IP]);

    // Two CNI networks are isolated.
    podman.ok(&[
        "run",
        "-d",
        "--name",
        "other",
        "--network",
        "back",
        IMAGE,
        "sleep",
        "600",
    ]);
    let across = podman.cli(&[
        "exec",
        "other",
        "sh",
        "-c",
        &format!("printf 'GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n' | nc -w 1 {web_ip} 80"),
    ]);
    assert!(
        String::from_utf8_lossy(&across.stdout).is_empty(),
        "back reached front: {across:?}"
    );
    assert!(agent.drops(7) > 0, "no isolation drop counted");

    // No netfilter rule in the node.
    assert_eq!(world::netfilter_rules(&w.node), Vec::<String>::new());

    // `podman rm -f`: DEL, and the publication goes.
    podman.ok(&["rm", "-f", "-t", "0", "web", "other"]);
    let gone = eventually(Duration::from_secs(5), || {
        let ps = agent.ok(&["ps"]);
        (!ps.contains("web") && !ps.contains("other")).then_some(())
    });
    assert!(gone.is_some(), "{}", agent.ok(&["ps"]));
    assert_eq!(
        agent
            .ok(&["port"])
            .lines()
            .filter(|l| l.contains("8080"))
            .count(),
        0
    );
    assert_eq!(who(&w.ext, &NODE_UPLINK_IP.to_string()), None);
}
