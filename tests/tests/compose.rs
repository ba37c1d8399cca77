//! End-to-end: Docker Compose apps (Debian's `docker-compose` 1.29, the
//! files under `tests/compose/`) run twice, on a dockerd whose rules are
//! weir's (`--iptables=false --ip6tables=false --userland-proxy=false`,
//! `weir agent --docker`) and, as the reference, on a dockerd with its own
//! iptables and ip6tables rules and its userland proxy, each in a world of
//! its own. Each app's reachability table (who reaches whom, from outside,
//! from the node, by name, and which address the other end sees) must be
//! the same on both; a difference is a failure. One pair of engines serves
//! every test of this file.

use std::{collections::BTreeSet, time::Duration};

use weir_tests::{
    World,
    agent::Agent,
    compose::{self, Project, Table, assert_same},
    docker::{Docker, Rules},
    eventually, world,
};

/// Docker's default network in both beds.
const BIP: &str = "172.31.250.1/24";

struct Side {
    // Dropped in this order: the agent, the engine, the namespaces.
    agent: Option<Agent>,
    docker: Docker,
    world: World,
}

impl Side {
    fn new(rules: Rules) -> Self {
        let world = World::new().unwrap();
        world.add_ipv6().unwrap();
        let docker = Docker::start_with(&world.node, world.stem(), BIP, rules);
        let agent = (rules == Rules::Off).then(|| {
            let socket = format!("unix://{}", docker.socket.display());
            Agent::start(&world, &["--docker", &socket])
        });
        Self {
            agent,
            docker,
            world,
        }
    }
}

struct Bed {
    weir: Side,
    docker: Side,
}

// The file's two engines, made by the first test that asks.
weir_tests::shared!(bed: Bed = Bed {
    weir: Side::new(Rules::Off),
    docker: Side::new(Rules::Docker),
});

/// The project's containers and their ports as Docker has them: the
/// addresses of every running container, and its published bindings (one
/// per port and host address, `[::]` beside `0.0.0.0` counted once).
fn docker_picture(project: &Project) -> (BTreeSet<String>, usize) {
    let label = format!("label=com.docker.compose.project={}", project.name);
    let mut ips = BTreeSet::new();
    let mut ports = 0;
    for id in project
        .docker
        .ok(&["ps", "-q", "--filter", &label])
        .split_whitespace()
    {
        let c: serde_json::Value =
            serde_json::from_str(&project.docker.ok(&["inspect", id])).unwrap();
        let settings = &c[0]["NetworkSettings"];
        for net in settings["Networks"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            if let Some(ip) = net["IPAddress"].as_str().filter(|s| !s.is_empty()) {
                ips.insert(ip.to_owned());
            }
        }
        for bindings in settings["Ports"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            let mut seen = BTreeSet::new();
            for b in bindings.as_array().into_iter().flatten() {
                let host = match b["HostIp"].as_str().unwrap_or_default() {
                    "" | "::" | "0.0.0.0" => "*",
                    other => other,
                };
                seen.insert((
                    host.to_owned(),
                    b["HostPort"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            ports += seen.len();
        }
    }
    (ips, ports)
}

/// Waits until weir follows the project as Docker has it now: an endpoint
/// for every address of its containers and their published ports; and, on
/// Docker's side, nothing to wait for (its rules are written before
/// `docker-compose` returns). Panics after 10 s.
fn caught_up(bed: &Bed, weir: &Project) {
    let agent = bed.weir.agent.as_ref().expect("weir's side has an agent");
    let prefix = format!("{}_", weir.name);
    let done = eventually(Duration::from_secs(10), || {
        let (want_ips, want_ports) = docker_picture(weir);
        let eps = agent.json(&["ps"]);
        let have_ips: BTreeSet<String> = eps
            .as_array()?
            .iter()
            .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
            .filter_map(|e| e["ip"].as_str().map(str::to_owned))
            .collect();
        let ports = agent.json(&["port"]);
        let have_ports = ports
            .as_array()?
            .iter()
            .filter(|p| {
                p["endpoint"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .count();
        (have_ips == want_ips && have_ports == want_ports).then_some(())
    });
    assert!(
        done.is_some(),
        "weir did not catch up with {}: Docker has {:?}, weir {} and {}\n{}",
        weir.name,
        docker_picture(weir),
        agent.json(&["ps"]),
        agent.json(&["port"]),
        agent.log_text()
    );
}

/// Runs `step` on both sides' projects, lets weir catch up, makes both
/// tables with `probe` and compares them.
fn same_on_both(
    bed: &Bed,
    weir: &Project,
    docker: &Project,
    step: &[&str],
    probe: impl Fn(&mut Table),
) {
    if !step.is_empty() {
        weir.ok(step);
        docker.ok(step);
    }
    caught_up(bed, weir);
    let mut tables = [
        Table::new(&bed.weir.world, weir),
        Table::new(&bed.docker.world, docker),
    ];
    for t in &mut tables {
        probe(t);
    }
    assert_same(&tables[0].rows, &tables[1].rows);
}

fn both<'a>(bed: &'a Bed, name: &str, file: &str) -> (Project<'a>, Project<'a>) {
    let file = compose::file(file);
    (
        Project::up(&bed.weir.docker, name, file.clone()),
        Project::up(&bed.docker.docker, name, file),
    )
}

/// The app of issue 36: `web` published on `front` and on the internal
/// `back` it shares with `api`, `worker` on `front` alone. From outside
/// `9080` answers with the client's address, `127.0.0.1:9081` only from
/// the node; `web` reaches `api` by name, `worker` does not; `api` reaches
/// nothing outside, `worker` does, as the node; through `restart`,
/// `stop`/`start`, `--scale api=3` and `down`.
#[test]
fn a_multi_network_app_behaves_as_under_docker_s_own_rules() {
    let bed = bed();
    let (weir, docker) = both(&bed, "shop", "shop.yml");
    let probe = |t: &mut Table| {
        let (web, worker, api) = (
            t.project.container("web", 1),
            t.project.container("worker", 1),
            t.project.container("api", 1),
        );
        t.from_outside(9080, false);
        t.from_outside(9081, false);
        t.from_node("127.0.0.1", 9081);
        t.from_node("127.0.0.1", 9080);
        t.from_container(&web, "api", 80);
        t.from_container(&worker, "api", 80);
        t.from_container(&worker, "web", 80);
        t.to_outside(&api, false);
        t.to_outside(&worker, false);
        t.to_outside(&web, false);
    };
    same_on_both(&bed, &weir, &docker, &[], probe);
    same_on_both(&bed, &weir, &docker, &["restart", "-t", "1", "web"], probe);
    same_on_both(&bed, &weir, &docker, &["stop", "-t", "1", "web"], |t| {
        t.from_outside(9080, false);
        t.from_node("127.0.0.1", 9081);
    });
    same_on_both(&bed, &weir, &docker, &["start", "web"], probe);
    same_on_both(
        &bed,
        &weir,
        &docker,
        &["up", "-d", "--scale", "api=3"],
        |t| {
            let web = t.project.container("web", 1);
            for _ in 0..3 {
                t.from_container(&web, "api", 80);
            }
            t.from_outside(9080, false);
        },
    );
    // No rule of weir's in its node, whatever the app did.
    assert_eq!(
        world::netfilter_rules(&bed.weir.world.node),
        Vec::<String>::new()
    );
    same_on_both(&bed, &weir, &docker, &["down", "-t", "1"], |t| {
        t.from_outside(9080, false);
        t.from_node("127.0.0.1", 9081);
    });
    let agent = bed.weir.agent.as_ref().unwrap();
    let left: Vec<serde_json::Value> = agent.json(&["ps"]).as_array().unwrap().clone();
    assert!(
        left.iter()
            .all(|e| !e["name"].as_str().unwrap_or_default().starts_with("shop_")),
        "weir kept endpoints of a project that is down: {left:?}"
    );
}

/// `--scale app=3` with a host port range: each replica answers on a port
/// of its own from outside; a client reaches the service by its name and
/// by a link's alias; scaled back to one, the other ports answer no more.
#[test]
fn a_scaled_service_behind_a_port_range() {
    let bed = bed();
    let (weir, docker) = both(&bed, "farm", "scaled.yml");
    let probe = |t: &mut Table| {
        for port in 9180..=9182 {
            t.from_outside(port, false);
        }
        let client = t.project.container("client", 1);
        t.from_container(&client, "app", 80);
        t.from_container(&client, "backend", 80);
    };
    same_on_both(
        &bed,
        &weir,
        &docker,
        &["up", "-d", "--scale", "app=3"],
        probe,
    );
    // Which replica keeps which port is the engine's pick: count them.
    let answering = |t: &mut Table| {
        let before = t.rows.len();
        for port in 9180..=9182 {
            t.from_outside(port, false);
        }
        let ok = t.rows[before..].iter().filter(|(_, o)| o != "no").count();
        t.rows.truncate(before);
        t.rows
            .push(("ports of 9180-9182 answering".to_owned(), ok.to_string()));
    };
    same_on_both(
        &bed,
        &weir,
        &docker,
        &["up", "-d", "--scale", "app=1"],
        answering,
    );
}

/// An IPv6-enabled network: the published port from outside over both
/// families with the client's own address, from the node's loopback of
/// both families, and egress over both families as the node.
#[test]
fn an_ipv6_enabled_network() {
    let bed = bed();
    let (weir, docker) = both(&bed, "dual", "dual.yml");
    same_on_both(&bed, &weir, &docker, &[], |t| {
        let web6 = t.project.container("web6", 1);
        t.from_outside(9280, false);
        t.from_outside(9280, true);
        t.from_node("127.0.0.1", 9280);
        t.from_node("[::1]", 9280);
        t.to_outside(&web6, false);
        t.to_outside(&web6, true);
    });
}

/// `network_mode: "service:web"`: the sidecar lives in web's namespace, so
/// it reaches web on its loopback and leaves as web does; web's port
/// answers from outside; weir has one endpoint for the two.
#[test]
fn a_sidecar_shares_its_service_s_endpoint() {
    let bed = bed();
    let (weir, docker) = both(&bed, "side", "sidecar.yml");
    same_on_both(&bed, &weir, &docker, &[], |t| {
        let side = t.project.container("side", 1);
        t.from_outside(9380, false);
        t.from_container(&side, "127.0.0.1", 80);
        t.to_outside(&side, false);
    });
    let agent = bed.weir.agent.as_ref().unwrap();
    let mine: Vec<String> = agent
        .json(&["ps"])
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .filter(|n| n.starts_with("side_"))
        .collect();
    assert_eq!(mine, ["side_web_1"]);
}

/// `docker network connect` of a second network to a running container
/// with a published port, then `disconnect`: the port answers throughout
/// from outside with the client's address, and the container reaches
/// outside as the node, as under Docker's own rules (which move the port
/// to the network that now gives the default gateway, and back).
#[test]
fn a_network_connected_and_disconnected_under_a_published_port() {
    let bed = bed();
    let (weir, docker) = both(&bed, "conn", "connect.yml");
    let probe = |t: &mut Table| {
        let web = t.project.container("web", 1);
        t.from_outside(9480, false);
        t.from_node("127.0.0.1", 9480);
        t.to_outside(&web, false);
    };
    same_on_both(&bed, &weir, &docker, &[], probe);
    for verb in ["connect", "disconnect"] {
        for project in [&weir, &docker] {
            let web = project.container("web", 1);
            project.docker.ok(&["network", verb, "conn_neta", &web]);
        }
        same_on_both(&bed, &weir, &docker, &[], probe);
    }
}

/// A network declared `external: true`: the app uses it as its own while
/// it runs; `down` leaves it to Docker and to weir; `docker network prune`
/// removes it from both.
#[test]
fn an_external_network_outlives_the_app_until_pruned() {
    let bed = bed();
    for side in [&bed.weir, &bed.docker] {
        side.docker
            .ok(&["network", "create", "--subnet", "10.95.0.0/24", "extshared"]);
    }
    let (weir, docker) = both(&bed, "ext", "external.yml");
    same_on_both(&bed, &weir, &docker, &[], |t| {
        let peer = t.project.container("peer", 1);
        t.from_outside(9580, false);
        t.from_container(&peer, "web", 80);
        t.to_outside(&peer, false);
    });
    same_on_both(&bed, &weir, &docker, &["down", "-t", "1"], |t| {
        t.from_outside(9580, false);
    });
    let agent = bed.weir.agent.as_ref().unwrap();
    let has = |name: &str| {
        agent
            .json(&["network", "ls"])
            .as_array()
            .is_some_and(|ns| ns.iter().any(|n| n["name"] == name))
    };
    assert!(
        has("extshared"),
        "weir dropped the external network with the app"
    );
    for side in [&bed.weir, &bed.docker] {
        side.docker.ok(&["network", "prune", "-f"]);
    }
    let gone = eventually(Duration::from_secs(5), || (!has("extshared")).then_some(()));
    assert!(
        gone.is_some(),
        "weir kept a network Docker pruned: {}",
        agent.json(&["network", "ls"])
    );
}
