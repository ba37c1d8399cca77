//! The sandboxed demo (`cargo xtask demo`): a throw-away world of network
//! namespaces (a `node` host, an `ext` host on its uplink), a real
//! `weir agent` in the node, and the `weir` CLI as a user would type it:
//! a web server started with `weir run -p 8080:80`, called from outside
//! and from the node itself, then inspected; then two networks kept apart,
//! with the drop seen live in `weir monitor`. Everything is removed at the
//! end, even after a failure.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::Context as _;
use weir_tests::{
    World,
    agent::{Agent, weir_bin},
    eventually,
    world::{self, NODE_UPLINK_IP},
};

/// The web server: answers one request with the caller's address.
const WEB_SH: &str = r#"while read -r line; do [ "$line" = "$(printf '\r')" ] && break; done
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from a weir container; you are %s\n' "$SOCAT_PEERADDR"
"#;

/// Requests the demo makes; the server then exits, and `weir run` with it.
const REQUESTS: usize = 4;

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

fn show(title: &str, ns: Option<&weir_tests::Netns>, program: &str, args: &[&str]) -> String {
    let where_ = ns.map_or("host", |n| n.name());
    println!("\n[{where_}]$ {program} {}    # {title}", args.join(" "));
    let out = match ns {
        Some(n) => n.exec(program, args),
        None => Command::new(program).args(args).output(),
    };
    match out {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            print!("{text}{}", String::from_utf8_lossy(&out.stderr));
            text
        }
        Err(e) => {
            println!("({e})");
            String::new()
        }
    }
}

fn main() -> anyhow::Result<()> {
    let mut w = World::new()?;
    w.add_container("a")?;
    w.add_container("b")?;
    println!(
        "world: node {} (uplink0 {NODE_UPLINK_IP}), ext {} (203.0.113.2)",
        w.node.name(),
        w.ext.name()
    );
    let mut agent = Agent::start(&w, &[]);
    println!(
        "weir agent running in the node; API socket {}",
        agent.socket.display()
    );
    weir(&agent, &["status"]);
    let result = publish_a_web_server(&w, &mut agent).and_then(|()| isolate(&w, &agent));
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
    result
}

fn publish_a_web_server(w: &World, agent: &mut Agent) -> anyhow::Result<()> {
    let script = agent.dir.join("web.sh");
    fs::write(&script, WEB_SH)?;
    let server = format!(
        "for i in $(seq {REQUESTS}); do socat TCP-LISTEN:80,reuseaddr SYSTEM:'sh {}'; done",
        script.display()
    );
    println!("\n$ weir run --name web -p 8080:80 -- sh -c \"{server}\" &");
    let run = Command::new(weir_bin())
        .arg("--socket")
        .arg(&agent.socket)
        .args([
            "run", "--name", "web", "-p", "8080:80", "--", "sh", "-c", &server,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting weir run")?;
    let netns = weir::paths::run_netns_path(&agent.socket, "web");
    let listening = eventually(Duration::from_secs(10), || {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(["ss", "-Hltn", "sport = :80"])
            .output()
            .ok()?;
        (!out.stdout.is_empty()).then_some(())
    });
    if listening.is_none() {
        anyhow::bail!("the web server did not start");
    }
    weir(agent, &["ps"]);
    weir(agent, &["port", "web"]);

    let url = format!("http://{NODE_UPLINK_IP}:8080/");
    show(
        "from outside, to the node's address",
        Some(&w.ext),
        "curl",
        &["-sS", "--max-time", "5", &url],
    );
    show(
        "from the node itself, to localhost",
        Some(&w.node),
        "curl",
        &["-sS", "--max-time", "5", "http://127.0.0.1:8080/"],
    );
    weir(agent, &["conntrack", "ls"]);

    survive_a_restart(w, agent, &url);

    let maps = agent.bpffs.join("maps");
    let pinned = |m: &str| maps.join(m).display().to_string();
    show(
        "the published port, as the datapath holds it",
        None,
        "bpftool",
        &["map", "dump", "pinned", &pinned("PUBLISH4")],
    );
    show(
        "the flow from ext, both directions",
        None,
        "bpftool",
        &["map", "dump", "pinned", &pinned("CT4")],
    );
    show(
        "no netfilter rules were made",
        Some(&w.node),
        "iptables-save",
        &[],
    );
    show(
        "nor nftables ones",
        Some(&w.node),
        "nft",
        &["list", "ruleset"],
    );
    show(
        "one last request; the server then exits",
        Some(&w.ext),
        "curl",
        &["-sS", "--max-time", "5", &url],
    );

    let out = run.wait_with_output()?;
    println!(
        "\nweir run (served {REQUESTS} requests, then exited with {}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    weir(agent, &["port"]);
    Ok(())
}

/// The agent is killed: the pinned datapath goes on serving; a new agent
/// takes it over, counters and all.
fn survive_a_restart(w: &World, agent: &mut Agent, url: &str) {
    println!("\n$ kill -9 <weir agent>    # the agent dies; its pinned links and maps stay");
    agent.kill();
    show(
        "from outside, with no agent running",
        Some(&w.ext),
        "curl",
        &["-sS", "--max-time", "5", url],
    );
    agent.restart();
    let took_over = agent
        .log_text()
        .lines()
        .rfind(|l| l.contains("datapath loaded"))
        .unwrap_or_default()
        .to_owned();
    println!(
        "\n$ weir agent    # a new agent reopens the pins and swaps its programs into the links\n{took_over}"
    );
    weir(agent, &["stats"]);
}

/// Two containers on two networks: masquerade out works for both, the
/// direct path between them does not, and `weir monitor` says why.
fn isolate(w: &World, agent: &Agent) -> anyhow::Result<()> {
    weir(
        agent,
        &["network", "create", "other", "--subnet", "10.61.0.0/24"],
    );
    let a_ns = w.c("a").path();
    let b_ns = w.c("b").path();
    let a = weir(
        agent,
        &[
            "attach",
            "weir",
            "--netns",
            &a_ns.display().to_string(),
            "--name",
            "a",
        ],
    );
    weir(
        agent,
        &[
            "attach",
            "other",
            "--netns",
            &b_ns.display().to_string(),
            "--name",
            "b",
        ],
    );
    let a_ip = a
        .split_whitespace()
        .nth(1)
        .context("attach prints the address")?
        .to_owned();
    println!(
        "
$ weir monitor &"
    );
    let mut monitor = Command::new(weir_bin())
        .arg("--socket")
        .arg(&agent.socket)
        .arg("monitor")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting weir monitor")?;
    let stdout = monitor.stdout.take().context("monitor's stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    show(
        "b reaches the outside (masqueraded)",
        Some(w.c("b")),
        "ping",
        &["-c", "1", "-W", "2", "203.0.113.2"],
    );
    show(
        "b, on network `other`, tries a by its address: dropped",
        Some(w.c("b")),
        "ping",
        &["-c", "1", "-W", "1", &a_ip],
    );
    show(
        "and over TCP",
        Some(w.c("b")),
        "curl",
        &["-sS", "--max-time", "2", &format!("http://{a_ip}/")],
    );
    std::thread::sleep(Duration::from_millis(300));
    let _ = monitor.kill();
    let _ = monitor.wait();
    println!("(weir monitor printed:)");
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        println!("{line}");
    }
    let maps = agent.bpffs.join("maps").join("DROP_STATS");
    show(
        "the drops, counted under reason 7 (isolation)",
        None,
        "bpftool",
        &[
            "map",
            "lookup",
            "pinned",
            &maps.display().to_string(),
            "key",
            "7",
            "0",
            "0",
            "0",
        ],
    );
    weir(agent, &["detach", "a"]);
    weir(agent, &["detach", "b"]);
    Ok(())
}
