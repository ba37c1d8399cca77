//! The agent's logs under systemd, against a journald socket of the
//! test's own (`weir_tests::journal`): records in the journal's native
//! protocol with their priorities and fields and no timestamp of their
//! own; stderr with `<N>` priorities when the socket cannot be reached;
//! and the agent's refusals for a bpffs it cannot use, each naming the
//! mount to make.

use weir_tests::{
    Netns,
    journal::{self, Bpffs, Journal, Record},
    netns::unique_stem,
};

/// A record's text holds no date and time like tracing's
/// `2026-12-07T14:42:36.123Z` (the journal stamps each record), and no
/// colour.
fn untimed(text: &str) -> bool {
    let stamp = |w: &[u8]| {
        w[..4].iter().all(u8::is_ascii_digit) && w[4] == b'-' && w[7] == b'-' && w[10] == b'T'
    };
    !text.as_bytes().windows(11).any(stamp) && !text.contains('\x1b')
}

fn node(stem: &str) -> Netns {
    Netns::create(&format!("{stem}-node")).expect("node namespace")
}

fn with_priority<'a>(records: &'a [Record], priority: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.get("PRIORITY").map(String::as_str) == Some(priority))
        .collect()
}

#[test]
fn under_systemd_a_refused_start_is_an_error_record_in_the_journal() {
    let stem = unique_stem();
    let node = node(&stem);
    let journal = Journal::bind(&stem).unwrap();
    let run = journal::refused_start(&node, &stem, Some(&journal), Bpffs::Missing, true, &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    // Everything went to the journal; nothing was said twice on stderr.
    assert_eq!(run.stderr, "", "{run:?}");
    let records = journal.records();
    let errors = with_priority(&records, "3");
    assert_eq!(errors.len(), 1, "{records:#?}");
    let error = errors[0];
    let message = &error["MESSAGE"];
    assert!(
        message
            .starts_with("no bpffs at /sys/fs/bpf, and no directory /sys/fs/bpf to mount one on")
            && message.contains("mount -t sysfs sysfs /sys && mount -t bpf bpf /sys/fs/bpf"),
        "{error:#?}"
    );
    assert!(untimed(message), "{error:#?}");
    assert_eq!(error["SYSLOG_IDENTIFIER"], "weir", "{error:#?}");
    assert_eq!(error["TARGET"], "weir::cli::agent", "{error:#?}");
    assert!(error["CODE_FILE"].ends_with("cli/agent.rs"), "{error:#?}");
    assert!(error["CODE_LINE"].parse::<u32>().is_ok(), "{error:#?}");
    // Whatever else the start logged went there too, the same way.
    assert!(
        records
            .iter()
            .all(|r| untimed(&r["MESSAGE"]) && r["SYSLOG_IDENTIFIER"] == "weir"),
        "{records:#?}"
    );
}

#[test]
fn with_no_journal_socket_records_go_to_stderr_with_priorities_said_once() {
    let stem = unique_stem();
    let node = node(&stem);
    let run = journal::refused_start(&node, &stem, None, Bpffs::Missing, true, &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines[0].starts_with("<4>the journal's socket cannot be reached (")
            && lines[0].ends_with("): logging on stderr"),
        "{lines:#?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("cannot be reached"))
            .count(),
        1,
        "{lines:#?}"
    );
    refusal_on_the_stream(&run.stderr);
}

/// What a refused start under systemd writes on stderr, the journal's
/// stream: the refusal last, at priority 3; each line with its priority
/// and no timestamp; the refusal said once (not again as the CLI's line).
fn refusal_on_the_stream(stderr: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("<3>no bpffs at /sys/fs/bpf, and no directory")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().all(|l| l.starts_with('<') && untimed(&l[3..])),
        "{lines:#?}"
    );
    assert!(!stderr.contains("weir: error:"), "{lines:#?}");
}

/// An explicit `--log-format text` under systemd: lines on stderr, which
/// is the journal's, with their priorities and no timestamp; nothing on
/// the journal's socket.
#[test]
fn text_under_systemd_is_lines_with_priorities_on_the_stream() {
    let stem = unique_stem();
    let node = node(&stem);
    let journal = Journal::bind(&stem).unwrap();
    let args = ["--log-format", "text"];
    let run = journal::refused_start(&node, &stem, Some(&journal), Bpffs::Missing, true, &args);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(journal.records(), Vec::<Record>::new());
    refusal_on_the_stream(&run.stderr);
}

#[test]
fn off_systemd_a_missing_bpf_directory_names_the_mounts_to_make() {
    let stem = unique_stem();
    let node = node(&stem);
    let run = journal::refused_start(&node, &stem, None, Bpffs::Missing, false, &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("weir: error: "))
        .unwrap_or_else(|| panic!("{run:?}"));
    assert_eq!(
        error,
        "weir: error: no bpffs at /sys/fs/bpf, and no directory /sys/fs/bpf to mount one on: \
         the kernel's sysfs has it whenever the kernel has BPF, so /sys here is not the \
         kernel's sysfs (or the kernel has no BPF, and weir cannot run on it): mount the \
         kernel's sysfs and bpffs on it (`mount -t sysfs sysfs /sys && mount -t bpf bpf \
         /sys/fs/bpf`), or mount bpffs on a directory of your own and put the pins under it \
         (`mkdir -p /run/weir-bpf && mount -t bpf bpf /run/weir-bpf`, then `weir agent \
         --bpffs /run/weir-bpf/weir`)"
    );
    // Text lines as on a terminal: timestamped, no priority prefix.
    assert!(
        run.stderr
            .lines()
            .filter(|l| !l.starts_with("weir: error: "))
            .all(|l| l.starts_with("20") && !l.starts_with('<')),
        "{run:?}"
    );
}

#[test]
fn a_read_only_bpffs_names_the_remount() {
    let stem = unique_stem();
    let node = node(&stem);
    let run = journal::refused_start(&node, &stem, None, Bpffs::ReadOnly, false, &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let expected = format!(
        "weir: error: the bpffs at /sys/fs/bpf is mounted read-only, and the pins go under it \
         (--bpffs /sys/fs/bpf/{stem}): remount it read-write (`mount -o remount,rw \
         /sys/fs/bpf`), or give --bpffs a directory under a writable bpffs\n"
    );
    assert!(run.stderr.ends_with(&expected), "{run:?}");
}

/// Each level's priority and a record's fields, from the layer the agent
/// builds, in a thread whose mount namespace has the test's socket at
/// `/run/systemd/journal/socket`.
#[test]
fn levels_reach_the_journal_as_priorities_3_4_6_7_with_their_fields() {
    let stem = unique_stem();
    let journal = Journal::bind(&stem).unwrap();
    let dir = journal.dir().to_owned();
    std::thread::spawn(move || {
        private_journal_dir(&dir);
        let logs = weir::logs::build(
            weir::logs::LogFormat::Journald,
            tracing_subscriber::EnvFilter::new("trace"),
            false,
        );
        assert_eq!(logs.sink, weir::logs::Sink::Journal);
        assert!(logs.fallback.is_none());
        tracing::dispatcher::with_default(&logs.dispatch, || {
            tracing::error!(endpoint = "web", port = 8080, "one");
            tracing::warn!("two");
            tracing::info!("three");
            tracing::debug!("four");
            tracing::trace!("five");
        });
    })
    .join()
    .unwrap();
    let records = journal.records();
    let got: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["MESSAGE"].as_str(), r["PRIORITY"].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("one", "3"),
            ("two", "4"),
            ("three", "6"),
            ("four", "7"),
            ("five", "7")
        ]
    );
    let first = &records[0];
    assert_eq!(first["WEIR_ENDPOINT"], "web", "{first:#?}");
    assert_eq!(first["WEIR_PORT"], "8080", "{first:#?}");
    assert_eq!(first["SYSLOG_IDENTIFIER"], "weir", "{first:#?}");
    assert!(first["CODE_FILE"].ends_with("journal.rs"), "{first:#?}");
}

/// This thread alone: a mount namespace of its own with a tmpfs on `/run`
/// and `dir` on `/run/systemd/journal`.
fn private_journal_dir(dir: &std::path::Path) {
    use std::ffi::CString;
    let c = |s: &str| CString::new(s).unwrap();
    let mount = |src: &str, target: &str, kind: &str, flags: libc::c_ulong| {
        let (src, target, kind) = (c(src), c(target), c(kind));
        // SAFETY: valid C strings; no data.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                kind.as_ptr(),
                flags,
                std::ptr::null(),
            )
        };
        assert_eq!(
            rc,
            0,
            "mount {target:?}: {}",
            std::io::Error::last_os_error()
        );
    };
    // SAFETY: unshare(2) of this thread's mount namespace (and with it its
    // filesystem attributes); other threads keep theirs.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    mount("none", "/", "", libc::MS_REC | libc::MS_PRIVATE);
    mount("tmpfs", "/run", "tmpfs", 0);
    std::fs::create_dir_all("/run/systemd/journal").unwrap();
    mount(
        dir.to_str().unwrap(),
        "/run/systemd/journal",
        "",
        libc::MS_BIND,
    );
}
