//! End-to-end: the real netavark (2.1) runs `weir-netavark` as the driver
//! of weir's networks, driven as Podman 5 drives it (`weir_tests::
//! netavark`): `netavark create` and the plugin's own `create` make the
//! networks; `netavark setup NETNS` and `teardown NETNS` with Podman's
//! `NetworkOptions` attach and detach containers (namespaces made here;
//! Debian has no Podman 5). A published port from outside with the client's
//! address, from the node's `127.0.0.1`, a port range, TCP and UDP on one
//! mapping, egress as the node, two networks apart, an internal network,
//! a container on two networks, static addresses and MAC, refusals in
//! netavark's error shape, teardown leaving nothing, and the agent
//! restarted under a running container.

use std::{net::Ipv4Addr, time::Duration};

use serde_json::{Value, json};
use weir_tests::{
    Netns, World,
    agent::{Agent, weir_bin},
    eventually,
    netavark::{Netavark, container_id, options, template},
    sock::{self, Server, any, at},
    world::{self, EXT_IP, NODE_UPLINK_IP},
};

struct Bed {
    // netavark before the agent, the agent before the world.
    nv: Netavark,
    agent: Agent,
    w: World,
    /// The networks' configurations as `create` answered them: what Podman
    /// stores and passes back in `network_info`.
    front: Value,
    back: Value,
    inside: Value,
}

/// `create.json` as `podman network create -d weir -o weir_socket=SOCKET
/// NAME [--internal]` asks `netavark create` for it.
fn create_config(agent: &Agent, name: &str, id_seed: &str, internal: bool) -> Value {
    let mut c = template("create.json");
    c["network"]["name"] = name.into();
    c["network"]["id"] = container_id(id_seed).into();
    c["network"]["internal"] = internal.into();
    c["network"]["options"] = json!({ "weir_socket": agent.socket });
    c
}

fn start() -> Bed {
    let w = World::new().unwrap();
    let agent = Agent::start(&w, &[]);
    let nv = Netavark::new(
        &w.node,
        w.stem(),
        &weir_bin().with_file_name("weir-netavark"),
    );
    let made = |r: Result<Value, String>| r.unwrap_or_else(|e| panic!("{e}\n{}", agent.log_text()));
    // The newer libnetwork's way: `netavark create`, which runs the plugin.
    let front = made(nv.create(&create_config(&agent, "front", "front", false)));
    let inside = made(nv.create(&create_config(&agent, "inside", "inside", true)));
    // Podman 5's way: the plugin's `create` itself.
    let mut back = template("network.json");
    back["options"] = json!({ "weir_socket": agent.socket });
    let back = made(nv.plugin_create(&back));
    Bed {
        nv,
        agent,
        w,
        front,
        back,
        inside,
    }
}

weir_tests::shared!(bed: Bed = start());

/// A container: its namespace, id and `NetworkOptions`.
struct Ctr {
    ns: Netns,
    options: Value,
}

impl Ctr {
    /// Container `name` on `networks` (each network's configuration and
    /// the container's options on it), publishing `ports`; not set up.
    fn new(b: &Bed, name: &str, networks: &[(&Value, Value)], ports: &Value) -> Self {
        let ns = Netns::create(&format!("{}-{name}", b.w.stem())).unwrap();
        let options = options(&container_id(name), name, networks, ports);
        Self { ns, options }
    }

    fn setup(&self, b: &Bed) -> Result<Value, String> {
        b.nv.setup(&self.ns.path(), &self.options)
    }

    fn up(&self, b: &Bed) -> Value {
        self.setup(b)
            .unwrap_or_else(|e| panic!("netavark setup: {e}\n{}", b.agent.log_text()))
    }

    fn teardown(&self, b: &Bed) {
        b.nv.teardown(&self.ns.path(), &self.options)
            .unwrap_or_else(|e| panic!("netavark teardown: {e}"));
    }
}

/// Per-network options: `interface_name` and more.
fn on(ifname: &str, more: &Value) -> Value {
    let mut v = json!({ "interface_name": ifname });
    for (k, x) in more.as_object().into_iter().flatten() {
        v[k] = x.clone();
    }
    v
}

/// A port mapping as Podman writes it.
fn port(host_ip: &str, host: u16, container: u16, range: u16, protocol: &str) -> Value {
    json!({ "host_ip": host_ip, "container_port": container, "host_port": host,
        "range": range, "protocol": protocol })
}

/// The address a status block gives interface `ifname` of `network`.
fn address(status: &Value, network: &str, ifname: &str) -> Ipv4Addr {
    let ipnet = status[network]["interfaces"][ifname]["subnets"][0]["ipnet"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {status}"));
    ipnet.split('/').next().unwrap().parse().unwrap()
}

/// `weir network inspect NAME`.
fn inspect(b: &Bed, name: &str) -> Value {
    serde_json::from_str(&b.agent.ok(&["network", "inspect", name])).unwrap()
}

fn banner(ns: &Netns, port: u16) -> Server {
    Server::banner(ns, any(port)).unwrap()
}

/// What the server at `to` says, from `ns` (`hello CLIENT:PORT`).
fn hello(ns: &Netns, to: std::net::SocketAddr) -> String {
    String::from_utf8_lossy(&sock::tcp_request(ns, to, b"").unwrap_or_default()).into_owned()
}

#[test]
fn networks_are_made_through_netavark_and_the_plugin() {
    let b = bed();
    // `netavark create`: Podman's configuration completed with weir's
    // network: a subnet of the agent's pools, its gateway, its bridge, weir
    // its one allocator; what Podman gave kept.
    let f = &b.front;
    assert_eq!(
        (&f["name"], &f["driver"], &f["id"]),
        (
            &json!("front"),
            &json!("weir"),
            &json!(container_id("front"))
        )
    );
    let weir = inspect(&b, "front");
    assert_eq!(f["subnets"][0]["subnet"], weir["ipam"]["subnet"], "{f}");
    assert_eq!(f["subnets"][0]["gateway"], weir["ipam"]["gateway"]);
    assert_eq!(f["network_interface"], weir["bridge"]);
    assert_eq!(f["ipam_options"], json!({ "driver": "none" }));
    assert_eq!(
        (&f["dns_enabled"], &f["internal"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(f["options"]["weir_socket"], json!(b.agent.socket));
    assert_ne!(f["created"], "0001-01-01T00:00:00Z", "netavark stamps it");
    // The plugin's own `create` (Podman 5): the subnet asked for, the
    // labels kept.
    assert_eq!(
        b.back["subnets"],
        json!([{ "subnet": "10.79.1.0/24", "gateway": "10.79.1.1" }])
    );
    assert_eq!(b.back["labels"], json!({ "tier": "back" }));
    assert_eq!(b.inside["internal"], true);
    assert_eq!(inspect(&b, "inside")["internal"], true);

    // The configuration Podman stored, given again: the same network.
    let again = b.nv.plugin_create(&b.front).unwrap();
    assert_eq!(
        (&again["subnets"], &again["network_interface"]),
        (&f["subnets"], &f["network_interface"])
    );
    // A name weir has with another subnet is refused, in netavark's shape.
    let mut other = create_config(&b.agent, "back", "back2", false);
    other["network"]["subnets"] = json!([{ "subnet": "10.79.9.0/24" }]);
    let err = b.nv.create(&other).unwrap_err();
    assert!(
        err.starts_with(
            "exit code 1, message: network `back` exists with subnet 10.79.1.0/24, not 10.79.9.0/24"
        ),
        "{err}"
    );
    // What weir has no counterpart for is refused, and nothing is made.
    let mut jumbo = create_config(&b.agent, "jumbo", "jumbo", false);
    jumbo["network"]["options"]["mtu"] = "9000".into();
    let err = b.nv.create(&jumbo).unwrap_err();
    assert!(err.contains("option `mtu` is not one weir has"), "{err}");
    assert!(b.agent.weir(&["network", "inspect", "jumbo"]).status.code() == Some(1));
    // netavark's own checks come first: a name Podman already uses.
    let mut taken = create_config(&b.agent, "podman", "podman", false);
    taken["network"]["name"] = "podman".into();
    assert!(b.nv.create(&taken).unwrap_err().contains("already exists"));
}

#[test]
fn published_ports_reach_the_container_with_the_client_s_address() {
    let b = bed();
    let ports = json!([
        port("", 18080, 80, 1, "tcp"),
        port("127.0.0.1", 18081, 80, 1, "tcp"),
        port("", 19000, 90, 3, "tcp"),
        port("", 15353, 53, 1, "tcp,udp"),
    ]);
    let id12 = &container_id("web")[..12];
    let web = Ctr::new(
        &b,
        "web",
        &[(&b.front, on("eth0", &json!({ "aliases": [id12] })))],
        &ports,
    );
    let servers: Vec<Server> = [80, 90, 91, 92, 53].map(|p| banner(&web.ns, p)).into();
    let udp = Server::udp(&web.ns, any(53)).unwrap();
    let status = web.up(&b);

    // The status block netavark expects, keyed by network.
    let gateway = b.front["subnets"][0]["gateway"].clone();
    let ip = address(&status, "front", "eth0");
    let eth0 = &status["front"]["interfaces"]["eth0"];
    assert_eq!(eth0["subnets"][0]["gateway"], gateway, "{status}");
    assert_eq!(status["front"]["dns_server_ips"], json!([gateway]));
    let inside = web.ns.ip(&["-o", "-4", "addr", "show", "eth0"]).unwrap();
    assert!(String::from_utf8_lossy(&inside.stdout).contains(&format!("inet {ip}/")));
    // An endpoint of netavark's, named after the container.
    let ep = b.agent.endpoint_json("web").expect("endpoint web");
    assert_eq!(
        ep["owner"],
        json!({ "kind": "netavark",
        "container_id": container_id("web"), "ifname": "eth0" })
    );
    assert_eq!(ep["ip"], ip.to_string());
    assert_eq!(eth0["mac_address"], ep["mac"]);
    let ps = b.agent.ok(&["ps"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with("web ") && l.contains("netavark")),
        "{ps}"
    );
    let shown = b.agent.ok(&["port", "web"]);
    for line in [
        "80/tcp -> 0.0.0.0:18080",
        "80/tcp -> 127.0.0.1:18081",
        "90/tcp -> 0.0.0.0:19000",
        "92/tcp -> 0.0.0.0:19002",
        "53/tcp -> 0.0.0.0:15353",
        "53/udp -> 0.0.0.0:15353",
    ] {
        assert!(shown.contains(line), "{line} not in\n{shown}");
    }

    // From outside: the container sees the client.
    let said = hello(&b.w.ext, at(NODE_UPLINK_IP, 18080));
    assert!(said.starts_with(&format!("hello {EXT_IP}:")), "{said:?}");
    // From the node's localhost, both the port on every address and the
    // one on 127.0.0.1 alone; the latter not from outside.
    for p in [18080, 18081] {
        let said = hello(&b.w.node, at(Ipv4Addr::LOCALHOST, p));
        assert!(said.starts_with("hello "), "127.0.0.1:{p}: {said:?}");
    }
    assert!(sock::connect_fails(&b.w.ext, at(NODE_UPLINK_IP, 18081)));
    // A range: each host port to its own container port.
    for (host, server) in [
        (19000, &servers[1]),
        (19001, &servers[2]),
        (19002, &servers[3]),
    ] {
        let said = hello(&b.w.ext, at(NODE_UPLINK_IP, host));
        assert!(
            said.starts_with(&format!("hello {EXT_IP}:")),
            "{host}: {said:?}"
        );
        assert_eq!(server.peer_ips(), vec![EXT_IP], "{host}");
    }
    // TCP and UDP on one mapping.
    assert!(hello(&b.w.ext, at(NODE_UPLINK_IP, 15353)).starts_with("hello "));
    let echo = sock::udp_request(&b.w.ext, None, at(NODE_UPLINK_IP, 15353), b"ping").unwrap();
    assert_eq!(
        (echo.as_slice(), udp.peer_ips()),
        (&b"ping"[..], vec![EXT_IP])
    );

    // Out as the node.
    let out = Server::tcp(&b.w.ext, at(EXT_IP, 19105)).unwrap();
    assert_eq!(
        sock::tcp_request(&web.ns, out.addr(), b"hi").unwrap(),
        b"hi"
    );
    assert_eq!(out.peer_ips(), vec![NODE_UPLINK_IP]);
    // Neither netavark nor weir wrote a netfilter rule in the node.
    assert_eq!(world::netfilter_rules(&b.w.node), Vec::<String>::new());

    // Teardown leaves nothing: no endpoint, no publication, no veth, no
    // interface in the container; and again, and without the namespace.
    let veth = ep["host_if"].as_str().unwrap().to_owned();
    web.teardown(&b);
    assert!(b.agent.endpoint_json("web").is_none());
    assert!(
        !b.agent.ok(&["port"]).contains(":1808"),
        "{}",
        b.agent.ok(&["port"])
    );
    assert!(
        b.w.node.ip(&["link", "show", &veth]).is_err(),
        "{veth} is left"
    );
    assert!(web.ns.ip(&["link", "show", "eth0"]).is_err());
    assert!(sock::connect_fails(&b.w.ext, at(NODE_UPLINK_IP, 18080)));
    web.teardown(&b);
    let path = web.ns.path();
    drop(web.ns);
    b.nv.teardown(&path, &web.options).unwrap();
    drop(servers);
}

#[test]
fn networks_are_apart_internal_has_no_egress_and_a_container_joins_two() {
    let b = bed();
    let a = Ctr::new(&b, "a", &[(&b.front, on("eth0", &json!({})))], &json!([]));
    let bk = Ctr::new(&b, "b", &[(&b.back, on("eth0", &json!({})))], &json!([]));
    let c = Ctr::new(&b, "c", &[(&b.inside, on("eth0", &json!({})))], &json!([]));
    let both = Ctr::new(
        &b,
        "both",
        &[
            (&b.front, on("eth0", &json!({}))),
            (&b.back, on("eth1", &json!({}))),
        ],
        &json!([]),
    );
    let ip_b = address(&bk.up(&b), "back", "eth0");
    a.up(&b);
    let ip_c = address(&c.up(&b), "inside", "eth0");
    let status = both.up(&b);
    let (both_front, both_back) = (
        address(&status, "front", "eth0"),
        address(&status, "back", "eth1"),
    );
    let servers: Vec<Server> = [&bk.ns, &both.ns, &c.ns].map(|ns| banner(ns, 7000)).into();

    // Two networks are apart; a container on both is reached on each.
    assert!(
        sock::connect_fails(&a.ns, at(ip_b, 7000)),
        "front reached back"
    );
    assert!(hello(&a.ns, at(both_front, 7000)).starts_with("hello "));
    assert!(hello(&bk.ns, at(both_back, 7000)).starts_with("hello "));
    assert!(b.agent.drops(7) > 0, "no isolation drop counted");
    // Its default route is the first network netavark sets up, the other's
    // behind it: netavark takes `networks` in the order of the JSON, which
    // Go writes sorted by name (`back` before `front`), whatever the
    // interfaces' names.
    let routes =
        String::from_utf8_lossy(&both.ns.ip(&["route", "show", "default"]).unwrap().stdout)
            .into_owned();
    let gateway = |n: &Value| n["subnets"][0]["gateway"].as_str().unwrap().to_owned();
    let lines: Vec<&str> = routes.lines().collect();
    assert!(
        lines.len() == 2
            && lines[0].starts_with(&format!("default via {} dev eth1 ", gateway(&b.back)))
            && !lines[0].contains("metric")
            && lines[1].starts_with(&format!("default via {} dev eth0 ", gateway(&b.front)))
            && lines[1].contains("metric"),
        "{routes}"
    );
    // The internal network reaches nothing past its gateway.
    let out = Server::tcp(&b.w.ext, at(EXT_IP, 19205)).unwrap();
    assert!(sock::connect_fails(&c.ns, out.addr()));
    assert!(sock::connect_fails(&a.ns, at(ip_c, 7000)));
    assert!(
        sock::tcp_request(&a.ns, out.addr(), b"hi").is_ok(),
        "front has egress"
    );

    for ctr in [&a, &bk, &c, &both] {
        ctr.teardown(&b);
    }
    for name in ["a", "b", "c", "both", "both-eth1"] {
        assert!(b.agent.endpoint_json(name).is_none(), "{name} is left");
    }
    drop(servers);
}

#[test]
fn static_addresses_and_refusals_in_netavark_s_shape() {
    let b = bed();
    let fixed = on(
        "eth0",
        &json!({ "static_ips": ["10.79.1.50"], "static_mac": "02:aa:bb:cc:dd:ee" }),
    );
    let one = Ctr::new(&b, "fixed", &[(&b.back, fixed)], &json!([]));
    let status = one.up(&b);
    let eth0 = &status["back"]["interfaces"]["eth0"];
    assert_eq!(eth0["subnets"][0]["ipnet"], "10.79.1.50/24", "{status}");
    assert_eq!(eth0["mac_address"], "02:aa:bb:cc:dd:ee");
    assert_eq!(
        one.ns.mac("eth0").unwrap(),
        [2, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]
    );

    // Each refusal is netavark's: the plugin's message behind its own words,
    // and nothing left in the container.
    let refused = |name: &str, network: &Value, per: Value| {
        let ctr = Ctr::new(&b, name, &[(network, per)], &json!([]));
        let err = ctr.setup(&b).unwrap_err();
        assert!(
            err.starts_with("plugin \"weir\" failed: exit code 1, message: "),
            "{err}"
        );
        assert!(
            ctr.ns.ip(&["link", "show", "eth0"]).is_err(),
            "{name}: eth0 left"
        );
        assert!(b.agent.endpoint_json(name).is_none());
        err
    };
    let err = refused(
        "twin",
        &b.back,
        on("eth0", &json!({ "static_ips": ["10.79.1.50"] })),
    );
    assert!(
        err.contains("address 10.79.1.50 is already used by endpoint `fixed`"),
        "{err}"
    );
    let err = refused(
        "far",
        &b.back,
        on("eth0", &json!({ "static_ips": ["10.250.0.5"] })),
    );
    assert!(
        err.contains("address 10.250.0.5 is not inside subnet 10.79.1.0/24"),
        "{err}"
    );
    let mut ghost = b.back.clone();
    ghost["name"] = "ghost".into();
    let err = refused("ghost", &ghost, on("eth0", &json!({})));
    assert!(
        err.contains(
            "weir has no network `ghost`: create it with `podman network create -d weir ghost`"
        ),
        "{err}"
    );
    let mut stale = b.back.clone();
    stale["subnets"] = json!([{ "subnet": "10.79.7.0/24", "gateway": "10.79.7.1" }]);
    let err = refused("stale", &stale, on("eth0", &json!({})));
    assert!(
        err.contains("network `back` has no subnet 10.79.7.0/24"),
        "{err}"
    );
    let mut away = b.back.clone();
    away["options"]["weir_socket"] = "/nonexistent/weir.sock".into();
    let err = refused("away", &away, on("eth0", &json!({})));
    assert!(
        err.contains("cannot reach the weir agent at /nonexistent/weir.sock"),
        "{err}"
    );

    one.teardown(&b);
    assert!(b.agent.endpoint_json("fixed").is_none());
}

#[test]
fn the_agent_restarted_under_a_running_container_keeps_its_port() {
    // A bed of its own: its agent goes away and comes back.
    let mut b = start();
    let ctr = Ctr::new(
        &b,
        "kept",
        &[(&b.back, on("eth0", &json!({})))],
        &json!([port("", 8080, 80, 1, "tcp")]),
    );
    let _server = banner(&ctr.ns, 80);
    ctr.up(&b);
    let reached = |b: &Bed| {
        hello(&b.w.ext, at(NODE_UPLINK_IP, 8080)).starts_with(&format!("hello {EXT_IP}:"))
    };
    assert!(reached(&b));
    b.agent.kill();
    assert!(reached(&b), "the port died with the agent");
    b.agent.restart();
    assert!(reached(&b), "the port died with the agent's restart");
    let ep = b
        .agent
        .endpoint_json("kept")
        .expect("the endpoint survives");
    assert_eq!(ep["owner"]["kind"], "netavark");
    ctr.teardown(&b);
    let gone = eventually(Duration::from_secs(5), || {
        (!reached(&b) && b.agent.endpoint_json("kept").is_none()).then_some(())
    });
    assert!(gone.is_some(), "{}", b.agent.ok(&["ps"]));
}
