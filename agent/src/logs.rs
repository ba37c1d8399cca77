//! Where the agent's log records go, and in what form.
//!
//! Under systemd (`JOURNAL_STREAM` names stderr's device and inode, as
//! systemd.exec(5) says a service may check) the records go to the
//! journal in its native protocol (`tracing-journald`): each with its
//! priority (error 3, warning 4, info 6, debug 7), its fields as journal
//! fields (`WEIR_ENDPOINT=`, ...) and no timestamp of its own, as the
//! journal stamps each record. On a terminal or into a file they are
//! text lines on stderr, as before; `json` is one object a line.
//!
//! When the journal's socket cannot be reached the records go to stderr,
//! and the first one says so. On stderr that is the journal's stream (an
//! explicit `--log-format text` under systemd, or that fallback), each
//! line starts with its priority as `<3>`, which journald reads
//! (`SyslogLevelPrefix=`, on by default), then the message and its fields
//! as `name=value`: no timestamp, level or target, which the journal has.

use std::{
    fmt,
    os::{fd::AsFd as _, unix::fs::MetadataExt as _},
};

use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::{
    EnvFilter, Layer, Registry,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::{Layered, SubscriberExt as _},
    registry::LookupSpan,
};

/// The agent's log formats (`weir agent --log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// The journal under systemd, else `text`.
    Auto,
    /// Lines on stderr: coloured on a terminal; under systemd with their
    /// priority as `<N>` and no timestamp.
    Text,
    /// One JSON object a line on stderr, for log collectors.
    Json,
    /// The journal's native protocol, with fields and priorities.
    Journald,
}

/// The journal's identifier of the agent's records.
pub const SYSLOG_IDENTIFIER: &str = "weir";
/// The prefix of the records' own fields in the journal: `endpoint`
/// becomes `WEIR_ENDPOINT`.
pub const FIELD_PREFIX: &str = "WEIR";

/// Where the records went, decided once at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// The journal's socket.
    Journal,
    /// Lines on stderr that is the journal's stream: `<N>`, no time.
    JournalStream,
    /// Lines on stderr.
    Text,
    /// JSON objects on stderr.
    Json,
}

/// The agent's logging, as [`build`] set it up.
pub struct Logs {
    pub dispatch: Dispatch,
    pub sink: Sink,
    /// stderr is the journal's stream (`JOURNAL_STREAM`).
    pub stderr_is_journal: bool,
    /// Why the journal was asked for and not reached, said once.
    pub fallback: Option<String>,
}

impl Logs {
    /// Whether the agent's last error belongs in a record (the journal
    /// takes it with its priority) rather than on stderr as the CLI's.
    #[must_use]
    pub fn journal(&self) -> bool {
        matches!(self.sink, Sink::Journal | Sink::JournalStream)
    }
}

/// The syslog priority of a level: error 3, warning 4, info 6, debug
/// and trace 7.
#[must_use]
pub fn priority(level: Level) -> Priority {
    match level {
        Level::ERROR => Priority::Error,
        Level::WARN => Priority::Warning,
        Level::INFO => Priority::Informational,
        _ => Priority::Debug,
    }
}

/// Whether `JOURNAL_STREAM` (`DEVICE:INODE`, in decimal) names the file
/// with `dev` and `ino`.
#[must_use]
pub fn names_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    journal_stream
        .split_once(':')
        .is_some_and(|(d, i)| d.parse() == Ok(dev) && i.parse() == Ok(ino))
}

/// Whether this process's stderr is the journal's stream.
#[must_use]
pub fn stderr_is_journal() -> bool {
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| names_stream(&var.to_string_lossy(), m.dev(), m.ino()))
}

type Boxed = Box<dyn Layer<Layered<EnvFilter, Registry>> + Send + Sync>;

/// The journal's layer, or why it cannot be had.
fn journal() -> std::io::Result<tracing_journald::Layer> {
    Ok(tracing_journald::layer()?
        .with_syslog_identifier(SYSLOG_IDENTIFIER.to_owned())
        .with_field_prefix(Some(FIELD_PREFIX.to_owned()))
        .with_priority_mappings(PriorityMappings {
            error: priority(Level::ERROR),
            warn: priority(Level::WARN),
            info: priority(Level::INFO),
            debug: priority(Level::DEBUG),
            trace: priority(Level::TRACE),
        }))
}

/// The logging `format` asks for, filtered by `filter`, with stderr the
/// journal's stream or not.
#[must_use]
pub fn build(format: LogFormat, filter: EnvFilter, stderr_is_journal: bool) -> Logs {
    use std::io::IsTerminal as _;
    let wants_journal = match format {
        LogFormat::Journald => true,
        LogFormat::Auto => stderr_is_journal,
        LogFormat::Text | LogFormat::Json => false,
    };
    let mut fallback = None;
    let journal = if wants_journal {
        journal()
            .map_err(|e| {
                fallback = Some(format!(
                    "the journal's socket cannot be reached ({e}): logging on stderr"
                ));
            })
            .ok()
    } else {
        None
    };
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let (sink, layer): (Sink, Boxed) = match (journal, format) {
        (Some(journal), _) => (Sink::Journal, Box::new(journal)),
        (None, LogFormat::Json) => (Sink::Json, Box::new(stderr.json())),
        (None, _) if stderr_is_journal => (
            Sink::JournalStream,
            Box::new(
                stderr.with_ansi(false).event_format(WithPriority(
                    tracing_subscriber::fmt::format()
                        .without_time()
                        .with_level(false)
                        .with_target(false)
                        .with_ansi(false),
                )),
            ),
        ),
        (None, _) => (
            Sink::Text,
            Box::new(stderr.with_ansi(std::io::stderr().is_terminal())),
        ),
    };
    Logs {
        dispatch: Dispatch::new(Registry::default().with(filter).with(layer)),
        sink,
        stderr_is_journal,
        fallback,
    }
}

/// Sets up the agent's logging, filtered by `RUST_LOG` (default `info`),
/// for the whole process; says once why the journal was not reached.
#[must_use]
pub fn init(format: LogFormat) -> Logs {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = build(format, filter, stderr_is_journal());
    // A second start in one process keeps the first's (tests).
    let _ = tracing::dispatcher::set_global_default(logs.dispatch.clone());
    if let Some(why) = &logs.fallback {
        tracing::warn!("{why}");
    }
    logs
}

/// A line formatter that puts the record's priority first, as `<3>`.
struct WithPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let digit = priority(*event.metadata().level()) as u8;
        write!(writer, "<{}>", char::from(digit))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_names_a_device_and_an_inode() {
        assert!(names_stream("64769:1234567", 64769, 1_234_567));
        assert!(!names_stream("64769:1234567", 64769, 1_234_568));
        assert!(!names_stream("64770:1234567", 64769, 1_234_567));
        assert!(!names_stream("", 0, 0));
        assert!(!names_stream("64769", 64769, 0));
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        let digits: Vec<char> = [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ]
        .into_iter()
        .map(|l| char::from(priority(l) as u8))
        .collect();
        assert_eq!(digits, ['3', '4', '6', '7', '7']);
    }

    #[test]
    fn auto_is_text_off_systemd_and_json_stays_json() {
        let filter = || EnvFilter::new("info");
        let off = build(LogFormat::Auto, filter(), false);
        assert_eq!((off.sink, off.fallback.is_none()), (Sink::Text, true));
        let json = build(LogFormat::Json, filter(), true);
        assert_eq!(json.sink, Sink::Json);
        let text = build(LogFormat::Text, filter(), true);
        assert_eq!(text.sink, Sink::JournalStream);
    }
}
