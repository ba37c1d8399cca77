//! `weir agent --trace ADDR`: the datapath records every packet from or to
//! one IPv4 address at every hook it meets, as it came and as it left,
//! with the hook's verdict (`datapath-ebpf/src/trace.rs`), through
//! aya-log's ring. The agent reads the records with aya-log's
//! `EbpfLogger` into a [`log::Log`] of its own, which turns each into a
//! [`MonitorEvent`] (`event: "trace"`) for the `weir monitor` watchers.
//! Compiled in, off unless asked for.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use aya::Ebpf;
use aya_log::EbpfLogger;
use tokio::{sync::broadcast, time::MissedTickBehavior};
use weir_common::stats::Hook;

use crate::monitor::{self, MonitorEvent, READ_EVERY};

/// Hands the datapath's trace records to `tx`'s watchers.
struct Sink {
    tx: broadcast::Sender<MonitorEvent>,
}

impl log::Log for Sink {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let now = unix_now_ns();
        if let Some(event) = parse(&record.args().to_string(), now) {
            let _ = self.tx.send(event);
        } else {
            tracing::debug!(record = %record.args(), "a trace record weir cannot read");
        }
    }

    fn flush(&self) {}
}

/// Takes aya-log's ring out of `ebpf` and reads it every [`READ_EVERY`]
/// for as long as the agent runs, publishing to `tx`.
pub fn spawn_reader(
    ebpf: &mut Ebpf,
    tx: broadcast::Sender<MonitorEvent>,
) -> Result<(), aya_log::Error> {
    let mut logger = EbpfLogger::init_with_logger(ebpf, Sink { tx })?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(READ_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            logger.flush();
        }
    });
    Ok(())
}

/// A record's line: hook, verdict, interface, protocol, length, then
/// source, port, destination, port as found and as left.
#[must_use]
pub fn parse(line: &str, unix_ns: u64) -> Option<MonitorEvent> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let [
        hook,
        verdict,
        ifindex,
        proto,
        len,
        s,
        sp,
        d,
        dp,
        ns,
        nsp,
        nd,
        ndp,
    ] = f[..]
    else {
        return None;
    };
    let hook: u32 = hook.parse().ok()?;
    let hook = Hook::ALL.iter().find(|h| h.index() == hook)?;
    let verdict: i32 = verdict.parse().ok()?;
    let ifindex: u32 = ifindex.parse().ok()?;
    // Every record is of an IPv4 packet.
    let (proto, ports) = monitor::proto_name(0x0800, proto.parse().ok()?);
    let addr = |a: &str, p: &str| -> Option<String> {
        let ip: Ipv4Addr = a.parse().ok()?;
        let port: u16 = p.parse().ok()?;
        Some(if ports {
            SocketAddr::new(IpAddr::V4(ip), port).to_string()
        } else {
            ip.to_string()
        })
    };
    let (src, dst) = (addr(s, sp)?, addr(d, dp)?);
    let (nat_src, nat_dst) = (addr(ns, nsp)?, addr(nd, ndp)?);
    let translated = (&nat_src, &nat_dst) != (&src, &dst);
    Some(MonitorEvent {
        time: monitor::rfc3339(unix_ns),
        time_unix_ns: unix_ns,
        event: "trace".to_owned(),
        reason: verdict_name(*hook, verdict),
        reason_number: verdict.cast_unsigned(),
        hook: hook.program().to_owned(),
        ifindex,
        interface: monitor::interface_name(ifindex),
        endpoint: None,
        proto,
        src,
        dst,
        smac: "-".to_owned(),
        len: len.parse().ok()?,
        nat_src: translated.then_some(nat_src),
        nat_dst: translated.then_some(nat_dst),
    })
}

/// What a hook's return value means.
fn verdict_name(hook: Hook, verdict: i32) -> String {
    let name = if hook == Hook::XdpFromUplink {
        match verdict {
            0 => "aborted",
            1 => "drop",
            2 => "pass",
            3 => "tx",
            4 => "redirect",
            _ => return format!("xdp-{verdict}"),
        }
    } else {
        match verdict {
            -1 => "next",
            0 => "pass",
            2 => "drop",
            7 => "redirect",
            _ => return format!("tc-{verdict}"),
        }
    };
    name.to_owned()
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_as_a_trace_line() {
        let e = parse(
            "1 7 5 6 74 198.51.100.7 40000 192.0.2.10 8080 198.51.100.7 40000 10.203.0.2 80",
            1_795_428_245_123_000_000,
        )
        .unwrap();
        assert_eq!(e.event, "trace");
        assert_eq!((e.reason.as_str(), e.reason_number), ("redirect", 7));
        assert_eq!(e.hook, "tc_from_uplink");
        assert_eq!(e.src, "198.51.100.7:40000");
        assert_eq!(e.dst, "192.0.2.10:8080");
        assert_eq!(e.nat_dst.as_deref(), Some("10.203.0.2:80"));
        let line = e.to_string();
        assert!(
            line.starts_with("2026-11-23T10:04:05.123Z trace redirect(7) tc_from_uplink "),
            "{line}"
        );
        assert!(
            line.ends_with(
                "tcp 198.51.100.7:40000 -> 192.0.2.10:8080 as 198.51.100.7:40000 -> 10.203.0.2:80 len 74"
            ),
            "{line}"
        );
    }

    #[test]
    fn an_untranslated_icmp_record_has_no_ports_and_no_second_pair() {
        let e = parse("4 1 3 1 98 10.0.0.1 0 10.0.0.2 0 10.0.0.1 0 10.0.0.2 0", 0).unwrap();
        assert_eq!(
            (e.reason.as_str(), e.hook.as_str()),
            ("drop", "xdp_from_uplink")
        );
        assert_eq!((e.src.as_str(), e.dst.as_str()), ("10.0.0.1", "10.0.0.2"));
        assert_eq!(e.nat_src, None);
        assert!(parse("4 1 3", 0).is_none());
        assert!(parse("9 1 3 1 98 10.0.0.1 0 10.0.0.2 0 10.0.0.1 0 10.0.0.2 0", 0).is_none());
    }
}
