//! The sandboxed demo (`cargo xtask demo`): a throw-away world of network
//! namespaces (a `node` host, an `ext` host on its uplink, containers), a
//! real `weir agent` in the node, and the `weir` CLI as a user would type
//! it. Everything is removed at the end, even after a failure.

use std::process::Command;

use weir_tests::{World, agent::Agent, world};

fn weir(agent: &Agent, args: &[&str]) -> String {
    println!("\n$ weir {}", args.join(" "));
    let out = agent.weir(args);
    print!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn show(title: &str, program: &str, args: &[&str]) {
    println!("\n$ {program} {}    # {title}", args.join(" "));
    match Command::new(program).args(args).output() {
        Ok(out) => print!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => println!("({program}: {e})"),
    }
}

fn main() -> anyhow::Result<()> {
    let mut w = World::new()?;
    w.add_container("web")?;
    w.add_container("db")?;
    println!(
        "world: node {}, ext {}, containers {} and {}",
        w.node.name(),
        w.ext.name(),
        w.c("web").name(),
        w.c("db").name()
    );
    let agent = Agent::start(&w, &[]);
    println!(
        "weir agent running in the node; its API socket is {}",
        agent.socket.display()
    );
    networks_and_endpoints(&w, &agent)?;
    inspect(&agent);
    weir(&agent, &["detach", "web"]);
    weir(&agent, &["detach", "db"]);
    weir(&agent, &["network", "rm", "back"]);
    let names = w.namespaces();
    drop(agent);
    drop(w);
    let left = world::all_namespaces()
        .into_iter()
        .filter(|n| names.contains(n))
        .count();
    println!(
        "\ntorn down: agent stopped, {} namespaces removed, {left} left",
        names.len()
    );
    Ok(())
}

/// Networks, two attached containers talking, and a `weir run`.
fn networks_and_endpoints(w: &World, agent: &Agent) -> anyhow::Result<()> {
    weir(agent, &["status"]);
    weir(
        agent,
        &[
            "network",
            "create",
            "back",
            "--subnet",
            "10.61.0.0/24",
            "--icc=false",
        ],
    );
    weir(agent, &["network", "ls"]);
    let web = w.c("web").path();
    let db = w.c("db").path();
    let web_ip = weir(
        agent,
        &[
            "attach",
            "weir",
            "--netns",
            web.to_str().unwrap_or_default(),
            "--name",
            "web",
        ],
    );
    weir(
        agent,
        &[
            "attach",
            "weir",
            "--netns",
            db.to_str().unwrap_or_default(),
            "--name",
            "db",
        ],
    );
    weir(agent, &["ps"]);
    let web_ip = web_ip
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .parse()?;
    let ok = world::ping(w.c("db"), web_ip);
    println!(
        "\nping db -> web ({web_ip}): {}",
        if ok { "answered" } else { "LOST" }
    );
    weir(
        agent,
        &[
            "run",
            "--name",
            "job",
            "--",
            "sh",
            "-c",
            "ip -4 -br addr show eth0 && ping -c1 -W1 -q 10.203.0.1 | tail -1",
        ],
    );
    Ok(())
}

/// What the kernel holds, through bpftool on the agent's pinned maps.
fn inspect(agent: &Agent) {
    let maps = agent.bpffs.join("maps");
    let pinned = |m: &str| maps.join(m).display().to_string();
    show(
        "the datapath's view of the endpoints",
        "bpftool",
        &["map", "dump", "pinned", &pinned("ENDPOINTS")],
    );
    show(
        "packets seen by tc_from_container, per CPU",
        "bpftool",
        &[
            "map",
            "lookup",
            "pinned",
            &pinned("HOOK_STATS"),
            "key",
            "0",
            "0",
            "0",
            "0",
        ],
    );
    show(
        "the program",
        "bpftool",
        &["prog", "show", "name", "tc_from_container"],
    );
}
