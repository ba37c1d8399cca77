//! End-to-end: real dockerd (`--iptables=false --ip6tables=false
//! --userland-proxy=false`) in the node, `weir agent --docker` following it.
//! Docker's own habits (`docker run -p`, `docker network create`, `docker
//! port`, `docker rm -f`) with weir's datapath doing the work, and no
//! netfilter rule in the node. One engine and one agent serve every test of
//! this file (dockerd takes seconds to stop); each test uses names and
//! networks of its own.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use weir_tests::{
    World,
    agent::Agent,
    docker::{self, Docker, HTTPD, HTTPD6, IMAGE, curl},
    eventually,
    sock::{Server, at},
    world::{self, EXT_IP, NODE_UPLINK_IP},
};

/// Docker's default network in the bed.
const BIP: &str = "172.31.250.1/24";
const DOCKER0_GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 31, 250, 1);

struct Bed {
    // Dropped in this order: the agent, the engine, the namespaces.
    agent: Agent,
    docker: Docker,
    world: World,
}

weir_tests::shared!(bed: Bed = {
    let world = World::new().unwrap();
    world.add_ipv6().unwrap();
    let docker = Docker::start(&world.node, world.stem(), BIP);
    let socket = format!("unix://{}", docker.socket.display());
    let agent = Agent::start(&world, &["--docker", &socket]);
    Bed {
        agent,
        docker,
        world,
    }
});

impl Bed {
    fn ports_of(&self, name: &str, n: usize) -> Vec<serde_json::Value> {
        docker::ports_of(&self.agent, name, n)
    }

    fn endpoint(&self, name: &str) -> serde_json::Value {
        docker::endpoint(&self.agent, name)
    }

    fn run(&self, args: &[&str]) -> String {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        self.docker.ok(&all)
    }
}

#[test]
fn a_published_port_reaches_the_container_from_outside_and_from_localhost() {
    let bed = bed();
    let mut args = vec!["--name", "pub1", "-p", "8081:80", IMAGE];
    args.extend_from_slice(HTTPD);
    bed.run(&args);
    bed.ports_of("pub1", 1);

    // From outside: the container sees the client's own address.
    let body = curl(
        &bed.world.ext,
        &format!("http://{NODE_UPLINK_IP}:8081/cgi-bin/who"),
    );
    assert_eq!(body.as_deref(), Some(&*format!("hello {EXT_IP}")));
    // From the node's localhost (dockerd itself listens on 8081; the
    // socket hooks point the node's connection at the container).
    let body = curl(&bed.world.node, "http://127.0.0.1:8081/cgi-bin/who");
    assert_eq!(body.as_deref(), Some(&*format!("hello {DOCKER0_GATEWAY}")));

    // Docker's view and weir's agree.
    assert_eq!(bed.docker.ok(&["port", "pub1"]), "80/tcp -> 0.0.0.0:8081");
    let ep = bed.endpoint("pub1");
    assert_eq!(ep["network"], "bridge");
    assert_eq!(ep["owner"]["kind"], "docker");
    let ls = bed.agent.ok(&["network", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("bridge ") && l.contains("docker0") && l.contains("docker")),
        "{ls}"
    );
    // Docker owns its ports and its endpoints.
    let err = bed.agent.refused(&["publish", "pub1", "9999:80"]);
    assert!(err.contains("docker run -p"), "{err}");
    let err = bed.agent.refused(&["detach", "pub1"]);
    assert!(err.contains("is docker's"), "{err}");
    let err = bed.agent.refused(&["network", "rm", "bridge"]);
    assert!(err.contains("docker network"), "{err}");

    // No netfilter rule in the node: weir's datapath did all of it.
    assert_eq!(
        world::netfilter_rules(&bed.world.node),
        Vec::<String>::new()
    );
}

#[test]
fn containers_reach_the_outside_as_the_node_and_not_another_network() {
    let bed = bed();
    bed.docker
        .ok(&["network", "create", "--subnet", "10.91.1.0/24", "isoa"]);
    bed.docker
        .ok(&["network", "create", "--subnet", "10.91.2.0/24", "isob"]);
    let mut args = vec!["--name", "a1", "--network", "isoa", IMAGE];
    args.extend_from_slice(HTTPD);
    bed.run(&args);
    bed.run(&["--name", "b1", "--network", "isob", IMAGE, "sleep", "600"]);
    let a1 = bed.endpoint("a1");
    bed.endpoint("b1");
    let a1_ip = a1["ip"].as_str().unwrap().to_owned();

    // Out: ext sees the node's uplink address (masquerade).
    let server = Server::tcp(&bed.world.ext, at(EXT_IP, 9101)).unwrap();
    let sent = bed.docker.cli(&[
        "exec",
        "b1",
        "sh",
        "-c",
        &format!("echo hi | nc -w 3 {EXT_IP} 9101"),
    ]);
    assert!(sent.status.success(), "{sent:?}");
    assert_eq!(server.peer_ips(), vec![NODE_UPLINK_IP]);

    // Across networks: b1 does not reach a1 by its address.
    let before = bed.agent.drops(7);
    let across = bed.docker.cli(&[
        "exec",
        "b1",
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 {a1_ip} 80"),
    ]);
    assert!(
        String::from_utf8_lossy(&across.stdout).is_empty(),
        "b1 reached a1: {across:?}"
    );
    assert!(bed.agent.drops(7) > before, "no isolation drop counted");

    // Docker removes a network: weir forgets it.
    bed.docker.ok(&["rm", "-f", "a1", "b1"]);
    bed.docker.ok(&["network", "rm", "isoa", "isob"]);
    let gone = eventually(Duration::from_secs(5), || {
        let ls = bed.agent.ok(&["network", "ls"]);
        (!ls.contains("isoa") && !ls.contains("isob")).then_some(())
    });
    assert!(gone.is_some(), "{}", bed.agent.ok(&["network", "ls"]));
}

#[test]
fn docker_rm_withdraws_the_publication_within_a_second() {
    let bed = bed();
    let mut args = vec!["--name", "gone1", "-p", "8082:80", IMAGE];
    args.extend_from_slice(HTTPD);
    bed.run(&args);
    bed.ports_of("gone1", 1);
    let url = format!("http://{NODE_UPLINK_IP}:8082/cgi-bin/who");
    assert!(curl(&bed.world.ext, &url).is_some_and(|b| b.starts_with("hello")));
    bed.docker.ok(&["rm", "-f", "gone1"]);
    let started = std::time::Instant::now();
    let withdrawn = eventually(Duration::from_secs(1), || {
        let ports = bed.agent.json(&["port"]);
        let left = ports.as_array()?.iter().any(|p| p["endpoint"] == "gone1");
        (!left).then_some(())
    });
    assert!(
        withdrawn.is_some(),
        "still published {:?} after rm -f",
        started.elapsed()
    );
    let maps = bed.agent.json(&["maps"]);
    assert!(
        !maps.to_string().contains("gone1"),
        "the datapath still names gone1"
    );
}

/// `GET /cgi-bin/who` from inside `container` with busybox nc: the answer.
fn who_from(bed: &Bed, container: &str, host: &str, port: u16) -> String {
    let out = bed.docker.cli(&[
        "exec",
        container,
        "sh",
        "-c",
        &format!("printf 'GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port}"),
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn hairpin_reaches_a_published_port_through_the_node_address() {
    let bed = bed();
    let mut args = vec!["--name", "hp1", "-p", "8088:80", IMAGE];
    args.extend_from_slice(HTTPD);
    bed.run(&args);
    bed.run(&["--name", "hp2", IMAGE, "sleep", "600"]);
    bed.ports_of("hp1", 1);
    let hp2 = bed.endpoint("hp2")["ip"].as_str().unwrap().to_owned();
    // A neighbour calls the node's address: the backend sees the caller.
    let body = who_from(&bed, "hp2", &NODE_UPLINK_IP.to_string(), 8088);
    assert!(body.contains(&format!("hello {hp2}")), "{body:?}");
    // The backend calls its own published port: it sees the node address
    // it called (else it would answer itself).
    let body = who_from(&bed, "hp1", &NODE_UPLINK_IP.to_string(), 8088);
    assert!(
        body.contains(&format!("hello {NODE_UPLINK_IP}")),
        "{body:?}"
    );
    bed.docker.ok(&["rm", "-f", "hp1", "hp2"]);
}

#[test]
fn enable_icc_false_keeps_neighbours_apart_but_lets_them_out() {
    let bed = bed();
    bed.docker.ok(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "--subnet",
        "10.91.5.0/24",
        "noicc",
    ]);
    let mut args = vec!["--name", "icc1", "--network", "noicc", IMAGE];
    args.extend_from_slice(HTTPD);
    bed.run(&args);
    bed.run(&[
        "--name",
        "icc2",
        "--network",
        "noicc",
        IMAGE,
        "sleep",
        "600",
    ]);
    let icc1 = bed.endpoint("icc1")["ip"].as_str().unwrap().to_owned();
    bed.endpoint("icc2");
    let before = bed.agent.drops(8);
    let body = who_from(&bed, "icc2", &icc1, 80);
    assert!(
        body.is_empty(),
        "a neighbour answered with icc off: {body:?}"
    );
    assert!(bed.agent.drops(8) > before, "no icc drop counted");
    let server = Server::tcp(&bed.world.ext, at(EXT_IP, 9103)).unwrap();
    let out = bed.docker.cli(&[
        "exec",
        "icc2",
        "sh",
        "-c",
        &format!("echo hi | nc -w 3 {EXT_IP} 9103"),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(server.peer_ips(), vec![NODE_UPLINK_IP]);
    bed.docker.ok(&["rm", "-f", "icc1", "icc2"]);
    bed.docker.ok(&["network", "rm", "noicc"]);
}

#[test]
fn an_internal_network_reaches_nothing_beyond_itself() {
    let bed = bed();
    bed.docker.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.91.6.0/24",
        "vault",
    ]);
    // Whatever routes Docker gives an internal network's containers, this
    // one has a default route via the gateway: only weir's rule stands
    // between it and ext.
    bed.run(&[
        "--name",
        "vault1",
        "--network",
        "vault",
        "--cap-add",
        "NET_ADMIN",
        IMAGE,
        "sh",
        "-c",
        "ip route add default via 10.91.6.1; sleep 600",
    ]);
    bed.endpoint("vault1");
    let server = Server::tcp(&bed.world.ext, at(EXT_IP, 9104)).unwrap();
    let before = bed.agent.drops(9);
    let routed = eventually(Duration::from_secs(5), || {
        let r = bed.docker.cli(&["exec", "vault1", "ip", "route"]);
        String::from_utf8_lossy(&r.stdout)
            .contains("default")
            .then_some(())
    });
    assert!(
        routed.is_some(),
        "the container made no default route: {}",
        bed.docker.ok(&["logs", "vault1"])
    );
    let out = bed.docker.cli(&[
        "exec",
        "vault1",
        "sh",
        "-c",
        &format!("echo hi | nc -w 1 {EXT_IP} 9104"),
    ]);
    assert!(!out.status.success() || server.peer_ips().is_empty());
    assert!(server.peer_ips().is_empty(), "{:?}", server.peer_ips());
    assert!(
        bed.agent.drops(9) > before,
        "no internal-network drop counted"
    );
    bed.docker.ok(&["rm", "-f", "vault1"]);
    bed.docker.ok(&["network", "rm", "vault"]);
}

/// A Docker network with IPv6 enabled: weir learns its IPv6 subnet and
/// its containers' IPv6 addresses, so they speak IPv6 to each other (not
/// taken for spoofed), and their IPv6 leaves masqueraded as the node's,
/// as weir's own networks' does; `-p H:C` is reached over both families
/// and `-p [::]:H:C` over IPv6 alone, the client's address kept.
#[test]
fn a_docker_ipv6_network_speaks_ipv6_inside_and_leaves_as_the_node() {
    let bed = bed();
    bed.docker.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.91.7.0/24",
        "--subnet",
        "fd00:91:7::/64",
        "dual6",
    ]);
    for name in ["six1", "six2"] {
        bed.run(&["--name", name, "--network", "dual6", IMAGE, "sleep", "600"]);
    }
    let six2 = bed.endpoint("six2")["ip6"]
        .as_str()
        .unwrap_or_else(|| panic!("no IPv6 address for six2: {}", bed.endpoint("six2")))
        .to_owned();
    assert!(six2.starts_with("fd00:91:7::"), "{six2}");
    bed.endpoint("six1");
    let spoofed = bed.agent.drops(6);
    let ping = bed
        .docker
        .in_container("six1", "ping", &["-6", "-c", "1", "-W", "2", &six2]);
    assert!(ping.status.success(), "six1 to six2 over IPv6: {ping:?}");
    assert_eq!(bed.agent.drops(6), spoofed, "IPv6 taken for spoofed");
    // Out to ext: the ping waits for the gateway's MAC, and the bridge's
    // IPv6 address may still be in duplicate address detection.
    let server = Server::http(&bed.world.ext, SocketAddr::from((world::EXT_IP6, 9106))).unwrap();
    let url = format!("http://[{}]:9106/", world::EXT_IP6);
    let body = eventually(Duration::from_secs(10), || {
        let out = bed
            .docker
            .in_container("six1", "curl", &["-s", "-m", "2", &url]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert!(body.is_some(), "six1 never reached ext over IPv6");
    let seen = server.received()[0].peer.ip();
    assert_eq!(
        seen,
        world::NODE_UPLINK_IP6,
        "ext saw the container's address"
    );
    published_over_ipv6(&bed);
    bed.docker.ok(&["rm", "-f", "six1", "six2", "six3", "six4"]);
    bed.docker.ok(&["network", "rm", "dual6"]);
}

/// `docker run -p 8089:80 -p [::]:8090:80` on the dual-stack network:
/// Docker lists `0.0.0.0` and `[::]` for the first, which weir holds as
/// one publication on both families; the second is IPv6's alone.
fn published_over_ipv6(bed: &Bed) {
    let mut args = vec![
        "--name",
        "six4",
        "--network",
        "dual6",
        "-p",
        "8089:80",
        "-p",
        "[::]:8090:80",
        IMAGE,
    ];
    args.extend_from_slice(HTTPD6);
    bed.run(&args);
    let ports = bed.ports_of("six4", 2);
    let hosts: Vec<&str> = ports.iter().filter_map(|p| p["host_ip"].as_str()).collect();
    assert!(
        hosts.contains(&"0.0.0.0") && hosts.contains(&"::"),
        "{ports:?}"
    );
    let node6 = world::NODE_UPLINK_IP6;
    let ext6 = format!("hello [{}]", world::EXT_IP6);
    for port in [8089, 8090] {
        let url = format!("http://[{node6}]:{port}/cgi-bin/who");
        let body = eventually(Duration::from_secs(10), || curl(&bed.world.ext, &url));
        assert_eq!(body.as_deref(), Some(ext6.as_str()), "{url}");
    }
    let over4 = |port: u16| {
        curl(
            &bed.world.ext,
            &format!("http://{NODE_UPLINK_IP}:{port}/cgi-bin/who"),
        )
    };
    // httpd on `[::]` shows an IPv4 client v4-mapped.
    let four = over4(8089).unwrap_or_default();
    assert!(four.contains(&EXT_IP.to_string()), "over IPv4: {four}");
    assert_eq!(over4(8090), None, "[::]:8090 reached over IPv4");
}
