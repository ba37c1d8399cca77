//! End-to-end: what Podman's own network suite (`test/system/
//! 500-networking.bats`, v4.3.1) checks where `weir-cni` could differ from
//! the reference plugins, with real Podman 4.3 (CNI backend) and one agent:
//! a static address with a published port (Podman passes one as `IP=` in
//! `CNI_ARGS`, two as `runtimeConfig.ips`, and strips the first plugin's
//! capabilities to `ips` alone unless it declares it), both families'
//! static addresses, a second network joined by a running container (its
//! default route behind the first's) and left (its ports move), a freed address not handed
//! out again at once, `--network a,b`, names through weir's resolver, which
//! the CNI result's `dns` puts in the container's `resolv.conf`.

use weir_tests::{
    World,
    agent::{Agent, weir_bin},
    docker::{HTTPD, curl},
    podman::{IMAGE, Podman},
    world::{EXT_IP, NODE_UPLINK_IP},
};

struct Bed {
    // Containers go before the agent, the agent before the world.
    podman: Podman,
    agent: Agent,
    w: World,
}

weir_tests::shared!(bed: Bed = {
    let w = World::new().unwrap();
    let agent = Agent::start(&w, &[]);
    agent.ok(&["network", "create", "pa", "--subnet", "10.79.0.0/24"]);
    agent.ok(&[
        "network", "create", "pb", "--subnet", "10.79.1.0/24", "--subnet", "fd00:79:1::/64",
    ]);
    agent.ok(&["network", "create", "pc", "--subnet", "10.79.2.0/24"]);
    let conflists = ["pa", "pb", "pc"].map(|n| agent.ok(&["cni", "config", n]));
    let plugin = weir_bin().with_file_name("weir-cni");
    let podman = Podman::new(&w.node, w.stem(), &plugin, &conflists);
    Bed { podman, agent, w }
});

/// `podman run -d --name NAME MORE... IMAGE httpd`.
fn web(b: &Bed, name: &str, more: &[&str]) {
    let mut run = vec!["run", "-d", "--name", name];
    run.extend_from_slice(more);
    run.push(IMAGE);
    run.extend_from_slice(HTTPD);
    b.podman.ok(&run);
}

/// What the container at `port` of the node says of its client, from ext.
fn who(b: &Bed, port: u16) -> Option<String> {
    curl(
        &b.w.ext,
        &format!("http://{NODE_UPLINK_IP}:{port}/cgi-bin/who"),
    )
}

fn endpoint(b: &Bed, name: &str) -> serde_json::Value {
    b.agent
        .endpoint_json(name)
        .unwrap_or_else(|| panic!("no endpoint {name}:\n{}", b.agent.log_text()))
}

fn exec(b: &Bed, name: &str, script: &str) -> String {
    b.podman.ok(&["exec", name, "sh", "-c", script])
}

/// The default routes of `ip route`'s text, their spaces made single.
fn defaults(routes: &str) -> Vec<String> {
    routes
        .lines()
        .filter(|l| l.starts_with("default"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn a_static_address_keeps_its_published_port() {
    let b = bed();
    web(
        &b,
        "fixed",
        &["--network", "pa", "--ip", "10.79.0.50", "-p", "8181:80"],
    );
    assert_eq!(endpoint(&b, "fixed")["ip"], "10.79.0.50");
    assert_eq!(b.agent.ok(&["port", "fixed"]), "80/tcp -> 0.0.0.0:8181\n");
    assert_eq!(who(&b, 8181).as_deref(), Some(&*format!("hello {EXT_IP}")));
    // `podman network reload`: DEL, then ADD with the same address.
    b.podman.ok(&["network", "reload", "fixed"]);
    assert_eq!(endpoint(&b, "fixed")["ip"], "10.79.0.50");
    assert_eq!(who(&b, 8181).as_deref(), Some(&*format!("hello {EXT_IP}")));
    b.podman.ok(&["rm", "-f", "-t", "0", "fixed"]);
}

#[test]
fn static_addresses_of_both_families_with_a_published_port() {
    let b = bed();
    web(
        &b,
        "dual",
        &[
            "--network",
            "pb",
            "--ip",
            "10.79.1.50",
            "--ip6",
            "fd00:79:1::50",
            "-p",
            "8182:80",
        ],
    );
    let ep = endpoint(&b, "dual");
    assert_eq!(
        (ep["ip"].as_str(), ep["ip6"].as_str()),
        (Some("10.79.1.50"), Some("fd00:79:1::50"))
    );
    let addrs = exec(&b, "dual", "ip -o addr show eth0");
    assert!(
        addrs.contains("10.79.1.50/24") && addrs.contains("fd00:79:1::50/64"),
        "{addrs}"
    );
    assert_eq!(who(&b, 8182).as_deref(), Some(&*format!("hello {EXT_IP}")));
    b.podman.ok(&["rm", "-f", "-t", "0", "dual"]);
}

#[test]
fn a_running_container_joins_and_leaves_a_second_network() {
    let b = bed();
    web(&b, "joiner", &["--network", "pa", "-p", "8183:80"]);
    b.podman.ok(&["network", "connect", "pc", "joiner"]);
    let second = exec(&b, "joiner", "ip -o -4 addr show eth1");
    assert!(second.contains("10.79.2."), "{second}");
    // The first interface keeps the default route; the port still answers.
    let routes = exec(&b, "joiner", "ip route");
    let d = defaults(&routes);
    assert_eq!(d.len(), 2, "{routes}");
    assert_eq!(d[0], "default via 10.79.0.1 dev eth0", "{routes}");
    assert!(
        d[1].starts_with("default via 10.79.2.1 dev eth1 metric "),
        "{routes}"
    );
    assert_eq!(who(&b, 8183).as_deref(), Some(&*format!("hello {EXT_IP}")));
    let inspect = b.podman.ok(&[
        "inspect",
        "joiner",
        "--format",
        "{{len .NetworkSettings.Networks}}",
    ]);
    assert_eq!(inspect, "2");
    let first: String = second
        .split_whitespace()
        .nth(3)
        .unwrap_or_default()
        .to_owned();

    // Left and joined again: another address (host-local's rotation).
    b.podman.ok(&["network", "disconnect", "pc", "joiner"]);
    assert!(
        b.podman
            .cli(&["exec", "joiner", "ip", "link", "show", "eth1"])
            .stdout
            .is_empty()
    );
    b.podman.ok(&["network", "connect", "pc", "joiner"]);
    let again = exec(&b, "joiner", "ip -o -4 addr show eth1");
    let next: String = again
        .split_whitespace()
        .nth(3)
        .unwrap_or_default()
        .to_owned();
    assert!(
        next.starts_with("10.79.2.") && next != first,
        "{first} then {next}"
    );
    assert_eq!(who(&b, 8183).as_deref(), Some(&*format!("hello {EXT_IP}")));

    // The first network left: its port moves to the one that remains.
    b.podman.ok(&["network", "disconnect", "pa", "joiner"]);
    assert_eq!(
        b.agent.ok(&["port", "joiner-eth1"]),
        "80/tcp -> 0.0.0.0:8183\n"
    );
    assert_eq!(who(&b, 8183).as_deref(), Some(&*format!("hello {EXT_IP}")));
    b.podman.ok(&["rm", "-f", "-t", "0", "joiner"]);
}

#[test]
fn a_container_starts_on_two_networks() {
    let b = bed();
    web(&b, "both", &["--network", "pa,pc", "-p", "8184:80"]);
    let addrs = exec(&b, "both", "ip -o -4 addr show");
    assert!(
        addrs.contains("10.79.0.") && addrs.contains("10.79.2."),
        "{addrs}"
    );
    let routes = exec(&b, "both", "ip route");
    let d = defaults(&routes);
    assert_eq!(d.len(), 2, "{routes}");
    assert!(
        !d[0].contains("metric") && d[1].contains("metric"),
        "{routes}"
    );
    assert_eq!(who(&b, 8184).as_deref(), Some(&*format!("hello {EXT_IP}")));
    b.podman.ok(&["rm", "-f", "-t", "0", "both"]);
}

#[test]
fn containers_find_each_other_by_name_through_weirs_resolver() {
    let b = bed();
    web(&b, "named", &["--network", "pa"]);
    web(&b, "asker", &["--network", "pa"]);
    let resolv = exec(&b, "asker", "cat /etc/resolv.conf");
    assert_eq!(
        resolv.lines().find(|l| l.starts_with("nameserver")),
        Some("nameserver 10.79.0.1"),
        "{resolv}"
    );
    let ip = endpoint(&b, "named")["ip"].as_str().unwrap().to_owned();
    let answer = exec(&b, "asker", "nslookup named");
    assert!(answer.contains(&ip), "{answer}");
    let page = exec(
        &b,
        "asker",
        "printf 'GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n' | nc -w 3 named 80",
    );
    assert!(page.contains("hello 10.79.0."), "{page}");
    b.podman.ok(&["rm", "-f", "-t", "0", "named", "asker"]);
}
