//! End-to-end: nothing of `weir run` outlives it. SIGTERM (`systemctl
//! stop`, `timeout`) and SIGHUP (a closed terminal) reach its command, and
//! it detaches: the endpoint, its published port and its namespace file
//! go. `weir detach` of a run removes the namespace file too. An agent
//! that was down while a run was killed (`SIGKILL`, its command with it)
//! releases the endpoint at start, though the namespace file is still
//! bound.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use weir_tests::{
    World,
    agent::{Agent, weir_bin},
    eventually,
};

/// `weir run --name NAME -p PORT:80 -- sleep SECS`, started, once its
/// endpoint is there.
fn run(agent: &Agent, name: &str, port: u16, secs: &str) -> Child {
    let child = Command::new(weir_bin())
        .arg("--socket")
        .arg(&agent.socket)
        .args([
            "run",
            "--name",
            name,
            "-p",
            &format!("{port}:80"),
            "--",
            "sleep",
            secs,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weir run");
    let there = eventually(Duration::from_secs(5), || agent.endpoint_json(name));
    assert!(
        there.is_some(),
        "weir run {name} made no endpoint:\n{}",
        agent.log_text()
    );
    child
}

fn netns_file(agent: &Agent, name: &str) -> PathBuf {
    agent.socket.with_file_name("netns").join(name)
}

fn published(agent: &Agent, port: u16) -> bool {
    agent.ok(&["port"]).contains(&format!(":{port}"))
}

fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: a signal to a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

#[test]
fn sigterm_and_sighup_end_in_a_detach_as_does_weir_detach() {
    let w = World::new().unwrap();
    let agent = Agent::start(&w, &[]);
    for (name, port, sig) in [
        ("rterm", 18081, libc::SIGTERM),
        ("rhup", 18082, libc::SIGHUP),
    ] {
        let mut child = run(&agent, name, port, "600");
        assert!(published(&agent, port) && netns_file(&agent, name).exists());
        signal(&child, sig);
        let status = child.wait().unwrap();
        assert!(!status.success(), "{name}: the command was cut off");
        assert!(
            agent.endpoint_json(name).is_none(),
            "{name}'s endpoint stayed"
        );
        assert!(!published(&agent, port), "{name}'s port stayed");
        assert!(
            !netns_file(&agent, name).exists(),
            "{name}'s namespace file stayed"
        );
    }
    let mut child = run(&agent, "rdetach", 18083, "600");
    agent.ok(&["detach", "rdetach"]);
    assert!(
        !netns_file(&agent, "rdetach").exists(),
        "weir detach left the namespace file"
    );
    signal(&child, libc::SIGTERM);
    let _ = child.wait();
}

#[test]
fn an_agent_releases_a_run_killed_while_it_was_down() {
    let w = World::new().unwrap();
    let mut agent = Agent::start(&w, &[]);
    let mut alive = run(&agent, "ralive", 18091, "600");
    let mut killed = run(&agent, "rkilled", 18092, "6001");
    agent.kill();
    // The run and its command die; the namespace stays bound.
    signal(&killed, libc::SIGKILL);
    let _ = killed.wait();
    let _ = Command::new("pkill")
        .args(["-KILL", "-f", "^sleep 6001$"])
        .status();
    assert!(netns_file(&agent, "rkilled").exists());
    agent.restart();
    assert!(
        agent.endpoint_json("rkilled").is_none(),
        "{}",
        agent.log_text()
    );
    assert!(!published(&agent, 18092));
    assert!(!netns_file(&agent, "rkilled").exists());
    // A run whose command lives on is kept.
    assert!(agent.endpoint_json("ralive").is_some());
    assert!(published(&agent, 18091));
    signal(&alive, libc::SIGTERM);
    let _ = alive.wait();
    assert!(agent.endpoint_json("ralive").is_none());
}
