//! The Debian package under a real systemd: a Debian 12 root
//! (`weir_tests::debian`, cached) booted by its own systemd 252 in
//! `systemd-nspawn -b --private-network` (`weir_tests::nspawn`), the
//! package installed with apt as an admin does, and, one after the other:
//!
//! - `apt install ./weir_*.deb`: the unit enabled and active, ready by
//!   `Type=notify`; a port published by `weir run` answers from outside;
//! - `systemctl restart weir`: a new agent, the port answering;
//! - an upgrade to a second version: the agent restarted onto the new
//!   binary (its `/proc/PID/exe` not deleted);
//! - a reboot: the agent back, enabled, on a fresh bpffs and network;
//! - `apt-get remove`: the agent stopped, its datapath left forwarding,
//!   no dangling `multi-user.target.wants` link, no unit loaded
//!   `not-found`;
//! - `apt-get purge`: the state, the pins and weir's links gone.
//!
//! Where the machine cannot boot a container, the test says why and
//! skips.

use std::{
    io::Write as _,
    time::{Duration, Instant},
};

use weir_tests::{
    debian::{self, Debs, Root},
    eventually,
    nspawn::{self, MACHINE_IP, Machine},
};

const PAGE: &str = "hello from weir under systemd\n";

fn skip(why: &str) {
    // The real stderr: libtest shows a passing test's output only with
    // --nocapture.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED the_package_under_systemd: {why}"
    );
}

/// What the published port answers from `ext`, once it answers.
fn page(m: &Machine<'_>, within: Duration) -> Option<String> {
    eventually(within, || m.ext.curl(&format!("http://{MACHINE_IP}:8080/")))
}

/// A web server in a `weir run` container publishing 8080, as a
/// transient unit of the machine's systemd.
fn serve(m: &Machine<'_>) {
    m.run(&[
        "systemd-run",
        "--unit=web",
        "--collect",
        "--quiet",
        "weir",
        "run",
        "--name",
        "web",
        "-p",
        "8080:80",
        "--",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/srv/www",
    ]);
    assert_eq!(
        page(m, Duration::from_secs(20)).as_deref(),
        Some(PAGE),
        "the published port: {}",
        m.sh("systemctl status web weir --no-pager")
    );
}

/// The agent's pid, with its unit active and ready (`Type=notify`: active
/// only after READY=1).
fn ready_agent(m: &Machine<'_>) -> u32 {
    assert_eq!(m.property("weir", "Type"), "notify");
    assert_eq!(
        (
            m.property("weir", "ActiveState"),
            m.property("weir", "SubState")
        ),
        ("active".to_owned(), "running".to_owned()),
        "{}",
        m.sh("systemctl status weir --no-pager; journalctl -u weir --no-pager | tail -20")
    );
    m.run(&["weir", "status"]);
    m.property("weir", "MainPID").parse().unwrap()
}

fn step(started: Instant, what: &str) {
    eprintln!("[{:5.1} s] {what}", started.elapsed().as_secs_f64());
}

#[test]
fn the_package_under_systemd() {
    let started = Instant::now();
    if let Some(why) = nspawn::unavailable() {
        return skip(&why);
    }
    let tar = match debian::tarball() {
        Ok(tar) => tar,
        Err(why) => return skip(&format!("no Debian root: {why}")),
    };
    step(started, "root cached");
    let debs = Debs::build();
    let root = Root::unpack(&tar);
    for deb in [&debs.first, &debs.second] {
        std::fs::copy(deb, root.join("root").join(deb.file_name().unwrap())).unwrap();
    }
    root.write("srv/www/index.html", PAGE);
    step(started, "packages built, root unpacked");
    let mut m = Machine::boot(&root);
    step(started, "booted");

    // Installed: enabled, started, ready.
    let first = format!("/root/weir_{}.deb", Debs::FIRST);
    m.run(&["apt-get", "install", "-y", "-q", &first]);
    assert_eq!(m.ok(&["systemctl", "is-enabled", "weir"]), "enabled");
    let pid = ready_agent(&m);
    serve(&m);
    step(started, "installed: enabled, active, the port answers");

    // Restarted: a new agent, the port answering all along.
    m.run(&["systemctl", "restart", "weir"]);
    let restarted = ready_agent(&m);
    assert_ne!(restarted, pid);
    assert_eq!(
        m.ext.curl(&format!("http://{MACHINE_IP}:8080/")).as_deref(),
        Some(PAGE)
    );
    step(started, "restarted");

    // Upgraded: the agent restarted onto the new binary.
    let second = format!("/root/weir_{}.deb", Debs::SECOND);
    m.run(&["apt-get", "install", "-y", "-q", &second]);
    assert_eq!(
        m.ok(&["dpkg-query", "-W", "-f=${Version}", "weir"]),
        Debs::SECOND
    );
    let upgraded = ready_agent(&m);
    assert_ne!(upgraded, restarted, "the upgrade did not restart the agent");
    let exe = m.ok(&["readlink", &format!("/proc/{upgraded}/exe")]);
    assert_eq!(exe, "/usr/bin/weir", "the agent runs an old binary");
    assert_eq!(
        m.ext.curl(&format!("http://{MACHINE_IP}:8080/")).as_deref(),
        Some(PAGE)
    );
    step(started, "upgraded");

    // Rebooted: the agent back, enabled, on a fresh bpffs and network.
    m.reboot();
    assert_eq!(m.ok(&["systemctl", "is-enabled", "weir"]), "enabled");
    ready_agent(&m);
    m.run(&["test", "-d", "/sys/fs/bpf/weir/links"]);
    m.run(&["ip", "link", "show", "weir0"]);
    serve(&m);
    step(started, "rebooted");

    // Removed: stopped, nothing of the unit left for systemd (asked
    // first: `systemctl show` would load it), the datapath forwarding
    // without its agent.
    let agent = ready_agent(&m);
    m.run(&["apt-get", "remove", "-y", "-q", "weir"]);
    assert_eq!(
        m.ok(&[
            "systemctl",
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "weir.service"
        ]),
        "",
        "systemd still has the unit loaded"
    );
    m.run(&["test", "!", "-e", &format!("/proc/{agent}")]);
    let wants = m.sh("ls -l /etc/systemd/system/multi-user.target.wants/");
    assert!(!wants.contains("weir"), "a dangling link: {wants}");
    m.run(&["test", "-e", "/var/lib/weir/state.json"]);
    m.run(&["test", "-d", "/sys/fs/bpf/weir/links"]);
    assert_eq!(
        m.ext.curl(&format!("http://{MACHINE_IP}:8080/")).as_deref(),
        Some(PAGE),
        "the removal took the datapath"
    );
    step(started, "removed");

    // Purged: weir off the machine.
    let said = m.ok(&["apt-get", "purge", "-y", "-q", "weir"]);
    for gone in ["/var/lib/weir", "/run/weir", "/sys/fs/bpf/weir"] {
        assert!(
            m.exec(&["test", "-e", gone]).status.code() == Some(1),
            "{gone} left: {said}"
        );
    }
    let links = m.ok(&["ip", "-o", "link", "show"]);
    assert!(!links.contains(": weir"), "weir's links left: {links}");
    assert_eq!(m.ext.curl(&format!("http://{MACHINE_IP}:8080/")), None);
    assert_eq!(
        m.sh("dpkg-query -W weir 2>&1"),
        "dpkg-query: no packages found matching weir\n"
    );
    step(started, "purged");
    m.poweroff();
    step(started, "powered off");
}
