//! systemd's side of the agent's logs, without systemd: the socket
//! journald reads native records on, bound by the test, and `weir agent`
//! started as systemd starts a service (its stderr a stream
//! `JOURNAL_STREAM` names, systemd.exec(5)).
//!
//! The agent runs in a node namespace of the test's, in a mount and PID
//! namespace of its own (`unshare --mount --pid --fork`), where `/run` is
//! a tmpfs whose `systemd/journal` is the test's directory (so the fixed
//! `/run/systemd/journal/socket` is the test's socket) and `/sys/fs` is
//! laid out as [`Bpffs`] says. Being PID 1 there, the agent was started
//! from no other mount namespace, so it judges that namespace's bpffs,
//! where nothing the node has is touched. Nothing outlives the test.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io,
    os::unix::{fs::MetadataExt as _, net::UnixDatagram},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use crate::{Netns, agent::weir_bin, eventually};

/// One journal record: its fields and their values.
pub type Record = BTreeMap<String, String>;

/// The test's journald socket, in a directory of its own (removed on drop).
pub struct Journal {
    dir: PathBuf,
    socket: UnixDatagram,
}

impl Journal {
    /// Binds `socket` in a new directory named after `stem`.
    pub fn bind(stem: &str) -> io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("{stem}-journal"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let socket = UnixDatagram::bind(dir.join("socket"))?;
        socket.set_nonblocking(true)?;
        Ok(Self { dir, socket })
    }

    /// The directory to mount on `/run/systemd/journal`.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every record received so far (empty datagrams, the layer's probe
    /// of the socket, left out).
    #[must_use]
    pub fn records(&self) -> Vec<Record> {
        let mut buf = vec![0u8; 1 << 16];
        let mut out = Vec::new();
        while let Ok(n) = self.socket.recv(&mut buf) {
            if n > 0 {
                out.push(parse(&buf[..n]));
            }
        }
        out
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A datagram of journald's native protocol: `NAME=value\n`, or `NAME\n`,
/// a 64-bit little-endian length, the value and `\n`.
#[must_use]
pub fn parse(mut data: &[u8]) -> Record {
    let mut record = Record::new();
    while let Some(end) = data.iter().position(|&b| b == b'\n' || b == b'=') {
        let name = String::from_utf8_lossy(&data[..end]).into_owned();
        let value;
        if data[end] == b'=' {
            let rest = &data[end + 1..];
            let stop = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            value = &rest[..stop];
            data = rest.get(stop + 1..).unwrap_or_default();
        } else {
            let rest = &data[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
            let len = usize::try_from(len).expect("a length");
            value = &rest[8..8 + len];
            data = rest.get(8 + len + 1..).unwrap_or_default();
        }
        record.insert(name, String::from_utf8_lossy(value).into_owned());
    }
    record
}

/// How `/sys/fs` looks to the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bpffs {
    /// A tmpfs over `/sys/fs`: no `/sys/fs/bpf` to mount bpffs on.
    Missing,
    /// A bpffs mounted read-only on `/sys/fs/bpf`.
    ReadOnly,
}

/// What a refused `weir agent` left: its exit code and its stderr.
#[derive(Debug)]
pub struct Refusal {
    pub code: Option<i32>,
    pub stderr: String,
}

/// Starts `weir agent ARGS` in `node`, laid out as described above with
/// `journal` on `/run/systemd/journal` (none: no socket there) and
/// `bpffs`; with `systemd`, its stderr is named by `JOURNAL_STREAM`.
/// Waits for it to end (killed after 30 s) and returns what it left.
#[must_use]
pub fn refused_start(
    node: &Netns,
    stem: &str,
    journal: Option<&Journal>,
    bpffs: Bpffs,
    systemd: bool,
    args: &[&str],
) -> Refusal {
    let dir = std::env::temp_dir().join(format!("{stem}-agent"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("agent dir");
    let _clean = RemoveOnDrop(dir.clone());
    let stderr_path = dir.join("stderr");
    let stderr = File::create(&stderr_path).expect("stderr file");
    let meta = stderr.metadata().expect("fstat");
    let script = r#"set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/journal
if [ -n "$T_JOURNAL" ]; then mount --bind "$T_JOURNAL" /run/systemd/journal; fi
case "$T_BPFFS" in
missing) mount -t tmpfs tmpfs /sys/fs ;;
read-only) mount -t bpf -o ro bpf /sys/fs/bpf ;;
esac
exec "$T_WEIR" --socket "$T_DIR/weir.sock" agent --state-dir "$T_DIR/state" \
    --bpffs "/sys/fs/bpf/$T_STEM" "$@"
"#;
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", node.path().display()))
        .args([
            "unshare",
            "--mount",
            "--pid",
            "--mount-proc",
            "--kill-child",
        ])
        .args(["sh", "-c", script, "sh"])
        .args(args)
        .env("T_JOURNAL", journal.map_or(Path::new(""), Journal::dir))
        .env(
            "T_BPFFS",
            match bpffs {
                Bpffs::Missing => "missing",
                Bpffs::ReadOnly => "read-only",
            },
        )
        .env("T_WEIR", weir_bin())
        .env("T_DIR", &dir)
        .env("T_STEM", stem)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    if systemd {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    }
    let mut child = cmd.spawn().expect("nsenter ... weir agent");
    let status = eventually(Duration::from_secs(30), || child.try_wait().ok().flatten());
    let code = if let Some(status) = status {
        status.code()
    } else {
        let _ = child.kill();
        let _ = child.wait();
        None
    };
    Refusal {
        code,
        stderr: fs::read_to_string(&stderr_path).unwrap_or_default(),
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
