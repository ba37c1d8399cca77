//! `weir-cni` driven as a CNI runtime drives it: the environment
//! (`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
//! `CNI_ARGS`) and the network configuration on stdin, the result or
//! error read from stdout. Every command, the shapes of the results, and
//! every error a runtime can meet, against a real agent.

use std::{
    io::Write as _,
    net::{Ipv4Addr, TcpListener},
    process::{Command, Stdio},
};

use serde_json::{Value, json};
use weir_tests::{
    World,
    agent::{Agent, weir_bin},
    sock::{self, Server, any},
    world::{EXT_IP, NODE_UPLINK_IP},
};

const NETWORK: &str = "podnet";
const SUBNET: &str = "10.77.0.0/24";

/// One plugin run: exit status and the JSON it printed.
struct Run {
    ok: bool,
    out: Value,
}

fn conf(agent: &Agent, version: &str, ports: &Value) -> Value {
    json!({
        "cniVersion": version,
        "name": NETWORK,
        "type": "weir-cni",
        "socket": agent.socket,
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": ports},
    })
}

fn plugin(env: &[(&str, &str)], stdin: &str) -> Run {
    let bin = weir_bin().with_file_name("weir-cni");
    let mut child = Command::new(&bin)
        .env_clear()
        .envs(env.iter().copied())
        .env("CNI_PATH", bin.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run weir-cni");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    Run {
        ok: out.status.success(),
        out: if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        },
    }
}

/// The environment of a command for container `id` in `netns` as eth0.
fn env<'a>(
    command: &'a str,
    id: &'a str,
    netns: &'a str,
    args: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", args),
    ]
}

fn error_code(r: &Run) -> u64 {
    assert!(!r.ok, "should have failed: {}", r.out);
    r.out["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("no code: {}", r.out))
}

fn bed() -> (World, Agent) {
    let mut w = World::new().unwrap();
    w.add_container("pod1").unwrap();
    w.add_container("pod2").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.ok(&["network", "create", NETWORK, "--subnet", SUBNET]);
    (w, agent)
}

#[test]
fn add_check_del_follow_the_spec_and_publish_the_runtime_s_ports() {
    let (w, agent) = bed();
    let id = "3f1a".repeat(16);
    let netns = w.c("pod1").path();
    let netns = netns.to_str().unwrap();
    let ports = json!([
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
        {"hostPort": 7070, "containerPort": 70, "protocol": "tcp", "hostIP": "::1"},
    ]);
    let stdin = conf(&agent, "1.0.0", &ports).to_string();
    let args = "IgnoreUnknown=1;K8S_POD_NAME=web;K8S_POD_NAMESPACE=default";

    // VERSION, as runtimes ask before each command.
    let v = plugin(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.0.0"}"#);
    assert!(v.ok);
    assert_eq!(
        v.out["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );

    // ADD: the interfaces, the address, the route.
    let add = plugin(&env("ADD", &id, netns, args), &stdin);
    assert!(add.ok, "{}", add.out);
    let r = &add.out;
    assert_eq!(r["cniVersion"], "1.0.0");
    assert_eq!(r["interfaces"][1]["name"], "eth0");
    assert_eq!(r["interfaces"][1]["sandbox"], netns);
    let mac = r["interfaces"][1]["mac"].as_str().unwrap().to_owned();
    assert_eq!(mac, "02:42:0a:4d:00:02");
    assert!(
        r["interfaces"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("weirv")
    );
    assert_eq!(r["ips"][0]["address"], "10.77.0.2/24");
    assert_eq!(r["ips"][0]["gateway"], "10.77.0.1");
    assert_eq!(r["ips"][0]["interface"], 1);
    assert!(r["ips"][0].get("version").is_none(), "1.0.0 has no version");
    assert_eq!(r["routes"][0]["dst"], "0.0.0.0/0");
    let ip = w
        .c("pod1")
        .exec("ip", &["-4", "-o", "addr", "show", "eth0"])
        .unwrap();
    assert!(String::from_utf8_lossy(&ip.stdout).contains("10.77.0.2/24"));

    // The endpoint is the runtime's, under the pod's name; its ports work.
    let ep = agent.endpoint_json("web").expect("endpoint web");
    assert_eq!(
        ep["owner"],
        json!({"kind": "cni", "container_id": id, "ifname": "eth0"})
    );
    assert_eq!(
        agent.ok(&["port", "web"]),
        "80/tcp -> 0.0.0.0:8080\n53/udp -> 127.0.0.1:5353\n",
        "the IPv6 hostIP is left out: the network has no IPv6 subnet"
    );
    let http = Server::http(w.c("pod1"), any(80)).unwrap();
    let body = w
        .ext
        .curl(&format!("http://{NODE_UPLINK_IP}:8080/"))
        .unwrap();
    assert!(body.starts_with(&format!("hello {EXT_IP}:")));
    assert_eq!(http.peer_ips(), vec![EXT_IP]);
    let err = agent.refused(&["publish", "web", "9999:80"]);
    assert!(err.contains("podman run -p"), "{err}");

    // ADD again: the same answer. CHECK: as ADD left it.
    let again = plugin(&env("ADD", &id, netns, args), &stdin);
    assert!(again.ok);
    assert_eq!(again.out, add.out);
    let check = plugin(&env("CHECK", &id, netns, args), &stdin);
    assert!(check.ok, "{}", check.out);
    let other_ports = conf(&agent, "1.0.0", &json!([])).to_string();
    let check = plugin(&env("CHECK", &id, netns, args), &other_ports);
    assert_eq!(
        error_code(&check),
        102,
        "CHECK with other ports: {}",
        check.out
    );

    // DEL, twice.
    let del = plugin(&env("DEL", &id, netns, args), &stdin);
    assert!(del.ok, "{}", del.out);
    assert_eq!(del.out, Value::Null);
    assert!(
        agent.ok(&["port"]).trim().lines().count() <= 1,
        "{}",
        agent.ok(&["port"])
    );
    assert!(!agent.ok(&["ps"]).contains("web"));
    assert!(plugin(&env("DEL", &id, netns, args), &stdin).ok);
    // CHECK of what is gone.
    let check = plugin(&env("CHECK", &id, netns, args), &stdin);
    assert_eq!(error_code(&check), 102);
}

#[test]
fn old_versions_get_old_shapes_and_a_gone_namespace_still_deletes() {
    let (mut w, agent) = bed();
    let netns = w.c("pod2").path();
    let netns = netns.to_str().unwrap().to_owned();
    let stdin = conf(&agent, "0.4.0", &json!([])).to_string();
    let add = plugin(
        &env(
            "ADD",
            "c0ffee",
            &netns,
            "IP=10.77.0.9;MAC=02:00:00:00:00:09",
        ),
        &stdin,
    );
    assert!(add.ok, "{}", add.out);
    assert_eq!(add.out["ips"][0]["version"], "4");
    assert_eq!(add.out["ips"][0]["address"], "10.77.0.9/24");
    assert_eq!(add.out["interfaces"][1]["mac"], "02:00:00:00:00:09");
    // The runtime removes the namespace before DEL: DEL still succeeds
    // and leaves nothing.
    w.remove_container("pod2");
    let del = plugin(&env("DEL", "c0ffee", &netns, ""), &stdin);
    assert!(del.ok, "{}", del.out);
    assert!(!agent.ok(&["ps"]).contains("cni-c0ffee"));
    // 0.3.x has no CHECK.
    let old = conf(&agent, "0.3.1", &json!([])).to_string();
    assert_eq!(
        error_code(&plugin(&env("CHECK", "c0ffee", &netns, ""), &old)),
        1
    );
}

#[test]
fn a_port_the_runtime_holds_itself_is_published_and_the_node_reaches_the_container() {
    let (w, agent) = bed();
    // Podman's conmon listens on every published port in the node.
    let conmon = w
        .node
        .run(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, 8090)).unwrap());
    let netns = w.c("pod1").path();
    let ports = json!([{"hostPort": 8090, "containerPort": 80, "protocol": "tcp"}]);
    let stdin = conf(&agent, "1.0.0", &ports).to_string();
    let add = plugin(&env("ADD", "abc123", netns.to_str().unwrap(), ""), &stdin);
    assert!(add.ok, "{}", add.out);
    let http = Server::http(w.c("pod1"), any(80)).unwrap();
    for (ns, url) in [
        (&w.ext, format!("http://{NODE_UPLINK_IP}:8090/")),
        (&w.node, "http://127.0.0.1:8090/".to_owned()),
    ] {
        let body = ns.curl(&url).unwrap();
        assert!(body.starts_with("hello "), "{url}");
    }
    assert_eq!(http.received().len(), 2, "both reached the container");
    conmon.set_nonblocking(true).unwrap();
    assert!(
        conmon.accept().is_err(),
        "the runtime's idle socket got a connection"
    );
}

#[test]
fn every_error_a_runtime_can_meet_is_a_cni_error_that_says_what_to_do() {
    let (w, agent) = bed();
    let netns = w.c("pod1").path();
    let netns = netns.to_str().unwrap();
    let good = conf(&agent, "1.0.0", &json!([])).to_string();

    let mut unknown = conf(&agent, "1.0.0", &json!([]));
    unknown["name"] = json!("nosuch");
    let r = plugin(&env("ADD", "e1", netns, ""), &unknown.to_string());
    assert_eq!(error_code(&r), 101);
    assert!(
        r.out["details"]
            .as_str()
            .unwrap()
            .contains("weir network create nosuch")
    );
    assert_eq!(r.out["cniVersion"], "1.0.0");

    let mut away = conf(&agent, "1.0.0", &json!([]));
    away["socket"] = json!("/nonexistent/weir.sock");
    let away = away.to_string();
    let r = plugin(&env("ADD", "e1", netns, ""), &away);
    assert_eq!(error_code(&r), 100);
    assert!(
        r.out["msg"]
            .as_str()
            .unwrap()
            .contains("cannot reach the weir agent")
    );
    assert_eq!(error_code(&plugin(&env("DEL", "e1", netns, ""), &away)), 11);
    assert_eq!(error_code(&plugin(&env("STATUS", "", "", ""), &away)), 50);

    let no_id = vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
    ];
    assert_eq!(error_code(&plugin(&no_id, &good)), 4);
    assert_eq!(error_code(&plugin(&[], &good)), 4);
    assert_eq!(
        error_code(&plugin(&env("ADD", "e1", netns, ""), "{not json")),
        6
    );
    let future = conf(&agent, "9.0.0", &json!([])).to_string();
    assert_eq!(
        error_code(&plugin(&env("ADD", "e1", netns, ""), &future)),
        1
    );
    assert_eq!(
        error_code(&plugin(&env("ADD", "e1", netns, "FOO=1"), &good)),
        2
    );
    assert_eq!(
        error_code(&plugin(
            &env("ADD", "e1", "/run/netns/weirt-nosuch", ""),
            &good
        )),
        3
    );
    let mut other = conf(&agent, "1.0.0", &json!([]));
    other["type"] = json!("bridge");
    assert_eq!(
        error_code(&plugin(&env("ADD", "e1", netns, ""), &other.to_string())),
        7
    );
    assert_eq!(error_code(&plugin(&env("FROB", "e1", netns, ""), &good)), 4);

    // The agent refuses: an address in use.
    let first = plugin(&env("ADD", "e1", netns, "IP=10.77.0.5"), &good);
    assert!(first.ok, "{}", first.out);
    let pod2 = w.c("pod2").path();
    let r = plugin(
        &env("ADD", "e2", pod2.to_str().unwrap(), "IP=10.77.0.5"),
        &good,
    );
    assert_eq!(error_code(&r), 102);
    assert!(
        r.out["msg"].as_str().unwrap().contains("10.77.0.5"),
        "{}",
        r.out
    );
    assert!(
        !agent.ok(&["ps"]).contains("cni-e2"),
        "a refused ADD left an endpoint"
    );

    // STATUS and GC (CNI 1.1).
    let status = conf(&agent, "1.1.0", &json!([])).to_string();
    assert!(plugin(&env("STATUS", "", "", ""), &status).ok);
    assert_eq!(error_code(&plugin(&env("GC", "", "", ""), &status)), 7);
    let mut gc = conf(&agent, "1.1.0", &json!([]));
    gc["cni.dev/valid-attachments"] = json!([]);
    let r = plugin(&env("GC", "", "", ""), &gc.to_string());
    assert!(r.ok, "{}", r.out);
    assert!(
        !agent.ok(&["ps"]).contains("cni-e1"),
        "GC left a stale attachment"
    );
}

#[test]
fn weir_cni_config_prints_a_conflist_for_a_network_and_refuses_an_unknown_one() {
    let (_w, agent) = bed();
    let conflist: Value = serde_json::from_str(&agent.ok(&["cni", "config", NETWORK])).unwrap();
    assert_eq!(conflist["name"], NETWORK);
    assert_eq!(conflist["plugins"][0]["type"], "weir-cni");
    assert_eq!(conflist["plugins"][0]["capabilities"]["portMappings"], true);
    assert_eq!(
        conflist["plugins"][0]["socket"],
        agent.socket.to_str().unwrap()
    );
    let err = agent.refused(&["cni", "config", "nosuch"]);
    assert!(err.contains("network `nosuch` not found"), "{err}");
}

#[test]
fn a_cni_endpoint_survives_an_agent_restart_and_deletes_after_it() {
    let (w, mut agent) = bed();
    let netns = w.c("pod1").path();
    let netns = netns.to_str().unwrap();
    let ports = json!([{"hostPort": 8091, "containerPort": 80, "protocol": "tcp"}]);
    let stdin = conf(&agent, "1.0.0", &ports).to_string();
    let add = plugin(&env("ADD", "feed01", netns, "K8S_POD_NAME=kept"), &stdin);
    assert!(add.ok, "{}", add.out);
    let http = Server::http(w.c("pod1"), any(80)).unwrap();
    let url = format!("http://{NODE_UPLINK_IP}:8091/");
    let get = || w.ext.curl(&url);
    assert!(get().is_some_and(|b| b.starts_with("hello ")));
    agent.restart();
    assert!(
        get().is_some_and(|b| b.starts_with("hello ")),
        "after the restart"
    );
    let ep = agent.endpoint_json("kept").expect("the endpoint came back");
    assert_eq!(ep["owner"]["kind"], "cni");
    assert!(plugin(&env("CHECK", "feed01", netns, ""), &stdin).ok);
    assert!(plugin(&env("DEL", "feed01", netns, ""), &stdin).ok);
    assert!(!agent.ok(&["ps"]).contains("kept"));
    assert_eq!(http.received().len(), 2);
}

/// A dual-stack network: ADD answers an address and a default route of
/// each family, and the pod has them; an IPv6 `hostIP` (Podman's
/// `-p [::1]:7070:70`) is published there, reached from the node; on an
/// IPv6-only network ADD answers IPv6 alone.
#[test]
fn add_on_a_dual_stack_network_answers_both_families() {
    let mut w = World::new().unwrap();
    w.add_container("pod6").unwrap();
    let agent = Agent::start(&w, &[]);
    agent.ok(&[
        "network",
        "create",
        NETWORK,
        "--subnet",
        SUBNET,
        "--subnet",
        "fd00:77::/64",
    ]);
    let netns = w.c("pod6").path();
    let netns = netns.to_str().unwrap().to_owned();
    let ports = json!([
        {"hostPort": 7070, "containerPort": 70, "protocol": "tcp", "hostIP": "::1"},
    ]);
    let stdin = conf(&agent, "0.4.0", &ports).to_string();
    let add = plugin(&env("ADD", "d6d6", &netns, ""), &stdin);
    assert!(add.ok, "{}", add.out);
    assert_eq!(add.out["ips"][1]["version"], "6", "{}", add.out);
    assert_eq!(add.out["ips"][1]["address"], "fd00:77::2/64");
    assert_eq!(add.out["ips"][1]["gateway"], "fd00:77::1");
    assert_eq!(add.out["routes"][1]["dst"], "::/0");
    let ping = w
        .c("pod6")
        .exec("ping", &["-6", "-c", "1", "-W", "2", "fd00:77::1"])
        .unwrap();
    assert!(ping.status.success(), "the pod reaches its IPv6 gateway");
    assert_eq!(agent.ok(&["port", "cni-d6d6"]), "70/tcp -> [::1]:7070\n");
    let _app = Server::tcp(w.c("pod6"), "[::]:70".parse().unwrap()).unwrap();
    let lo6 = "[::1]:7070".parse().unwrap();
    assert_eq!(sock::tcp_request(&w.node, lo6, b"six").unwrap(), b"six");
    let check = plugin(&env("CHECK", "d6d6", &netns, ""), &stdin);
    assert!(check.ok, "CHECK with the IPv6 hostIP: {}", check.out);
    let del = plugin(&env("DEL", "d6d6", &netns, ""), &stdin);
    assert!(del.ok, "{}", del.out);

    // An IPv6-only network: ADD answers IPv6 alone.
    agent.ok(&["network", "create", "only6", "--subnet", "fd00:78::/64"]);
    let mut only6 = conf(&agent, "1.0.0", &json!([]));
    only6["name"] = json!("only6");
    let add = plugin(&env("ADD", "e6e6", &netns, ""), &only6.to_string());
    assert!(add.ok, "{}", add.out);
    assert_eq!(
        (
            add.out["ips"].as_array().map(Vec::len),
            &add.out["ips"][0]["address"]
        ),
        (Some(1), &json!("fd00:78::2/64")),
        "{}",
        add.out
    );
    assert_eq!(
        add.out["routes"],
        json!([{"dst": "::/0", "gw": "fd00:78::1"}])
    );
    let v4 = w
        .c("pod6")
        .exec("ip", &["-4", "-o", "addr", "show", "eth0"])
        .unwrap();
    assert!(v4.stdout.is_empty(), "an IPv4 address: {v4:?}");
    assert!(plugin(&env("DEL", "e6e6", &netns, ""), &only6.to_string()).ok);
}
