//! `weir monitor`: the datapath's drop events, live. The agent is the one
//! reader of the `EVENTS` ring buffer (a ring buffer has one consumer); it
//! turns each record into a [`MonitorEvent`] and hands it to every
//! `GET /v1/monitor` stream through a broadcast channel. With nobody
//! watching, records are read and discarded, so the ring never fills.
//! The datapath writes records without waking the reader (a wake-up per
//! drop would make a flood of drops a flood of wake-ups); the reader
//! drains the ring every [`READ_EVERY`] instead.

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use aya::maps::{MapData, RingBuf};
use serde::{Deserialize, Serialize};
use tokio::{sync::broadcast, time::MissedTickBehavior};
use weir_common::{
    drop::DropReason,
    event::{DropEvent, DropEvent6},
    publish::{PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP},
    stats::Hook,
};

/// How many events a slow watcher may fall behind before it loses some.
const BACKLOG: usize = 4_096;

/// How often the reader drains the ring: how late `weir monitor` may show
/// a drop.
pub const READ_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// One dropped packet, as `weir monitor` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorEvent {
    /// Wall-clock time, RFC 3339 UTC with milliseconds.
    pub time: String,
    pub time_unix_ns: u64,
    /// `drop` (the only kind so far).
    pub event: String,
    /// The stable reason name and number.
    pub reason: String,
    pub reason_number: u32,
    /// The program that dropped it.
    pub hook: String,
    pub ifindex: u32,
    /// The interface's name, if it still exists.
    pub interface: Option<String>,
    /// The endpoint behind the interface, if it is a container veth.
    pub endpoint: Option<String>,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `arp`, `ip/<n>`, `ip6/<n>` (IPv6's
    /// next header), or `ether/<type>`.
    pub proto: String,
    /// `address[:port]`, `[address]:port` for IPv6 (ARP: sender and
    /// target address).
    pub src: String,
    pub dst: String,
    pub smac: String,
    pub len: u32,
    /// A trace record's addresses as the packet left its hook, where they
    /// differ from `src` and `dst` (a translated packet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_src: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_dst: Option<String>,
}

impl MonitorEvent {
    /// Decodes a record: an IPv4 (or ARP, or other) packet's, or with
    /// `v6` an IPv6 packet's addresses; `offset_ns` turns the datapath's
    /// monotonic time into Unix time.
    #[must_use]
    pub fn from_raw(e: &DropEvent, v6: Option<&DropEvent6>, offset_ns: i128) -> Self {
        let reason = DropReason::from_number(e.reason);
        let unix = i128::from(e.time_ns) + offset_ns;
        let unix = u64::try_from(unix.max(0)).unwrap_or(0);
        let (proto, ports) = proto_name(u16::from_be_bytes(e.ethertype), e.proto);
        let known = !proto.starts_with("ether/") && (e.ethertype != [0x86, 0xdd] || v6.is_some());
        let addr = |a: IpAddr, port: [u8; 2]| {
            if !known {
                "-".to_owned()
            } else if ports {
                SocketAddr::new(a, u16::from_be_bytes(port)).to_string()
            } else {
                a.to_string()
            }
        };
        let (src, dst) = match v6 {
            Some(v6) => (
                IpAddr::from(Ipv6Addr::from(v6.saddr)),
                IpAddr::from(Ipv6Addr::from(v6.daddr)),
            ),
            None => (
                IpAddr::from(Ipv4Addr::from(e.saddr)),
                IpAddr::from(Ipv4Addr::from(e.daddr)),
            ),
        };
        Self {
            time: rfc3339(unix),
            time_unix_ns: unix,
            event: "drop".to_owned(),
            reason: reason.map_or_else(|| format!("reason-{}", e.reason), |r| r.name().to_owned()),
            reason_number: e.reason,
            hook: Hook::ALL
                .iter()
                .find(|h| h.index() == u32::from(e.hook))
                .map_or("?", |h| h.program())
                .to_owned(),
            ifindex: e.ifindex,
            interface: interface_name(e.ifindex),
            endpoint: None,
            src: addr(src, e.sport),
            dst: addr(dst, e.dport),
            proto,
            smac: crate::network::mac_string(e.smac),
            len: e.len,
            nat_src: None,
            nat_dst: None,
        }
    }
}

/// One line: `TIME drop REASON(N) IFACE[/ENDPOINT] PROTO SRC -> DST len N`;
/// a trace record's: `TIME trace VERDICT(N) HOOK IFACE[/ENDPOINT] PROTO
/// SRC -> DST [as SRC -> DST] len N`.
impl fmt::Display for MonitorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let iface = self
            .interface
            .clone()
            .unwrap_or_else(|| format!("if{}", self.ifindex));
        let iface = match &self.endpoint {
            Some(ep) => format!("{iface}/{ep}"),
            None => iface,
        };
        if self.event == "trace" {
            write!(
                f,
                "{} trace {}({}) {} {} {} {} -> {}",
                self.time,
                self.reason,
                self.reason_number,
                self.hook,
                iface,
                self.proto,
                self.src,
                self.dst
            )?;
            if let (Some(s), Some(d)) = (&self.nat_src, &self.nat_dst) {
                write!(f, " as {s} -> {d}")?;
            }
            return write!(f, " len {}", self.len);
        }
        write!(
            f,
            "{} {} {}({}) {} {} {} -> {} len {} mac {}",
            self.time,
            self.event,
            self.reason,
            self.reason_number,
            iface,
            self.proto,
            self.src,
            self.dst,
            self.len,
            self.smac
        )
    }
}

/// A packet's protocol as `weir monitor` names it, from its ethertype and
/// IP protocol (next header), and whether it has ports.
pub(crate) fn proto_name(ethertype: u16, proto: u8) -> (String, bool) {
    match (ethertype, proto) {
        (0x0806, _) => ("arp".to_owned(), false),
        (0x0800 | 0x86dd, PROTO_TCP) => ("tcp".to_owned(), true),
        (0x0800 | 0x86dd, PROTO_UDP) => ("udp".to_owned(), true),
        (0x0800, PROTO_ICMP) => ("icmp".to_owned(), false),
        (0x0800, n) => (format!("ip/{n}"), false),
        (0x86dd, PROTO_ICMPV6) => ("icmpv6".to_owned(), false),
        (0x86dd, n) => (format!("ip6/{n}"), false),
        (t, _) => (format!("ether/{t:#06x}"), false),
    }
}

/// The name of interface `ifindex` in the agent's namespace.
pub(crate) fn interface_name(ifindex: u32) -> Option<String> {
    let mut buf = [0u8; libc::IF_NAMESIZE];
    // SAFETY: `buf` has room for IF_NAMESIZE bytes, as the call requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Unix time minus monotonic time, now, in nanoseconds.
fn clock_offset_ns() -> i128 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to fill.
        unsafe { libc::clock_gettime(clock, &raw mut ts) };
        i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
    };
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC)
}

/// `2026-11-23T10:04:05.123Z`.
pub(crate) fn rfc3339(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let millis = (unix_ns / 1_000_000) % 1_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil, for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3_600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Where events are published to watchers.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<MonitorEvent>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Hub {
    /// Where a reader of another source publishes its events.
    #[must_use]
    pub fn sender(&self) -> broadcast::Sender<MonitorEvent> {
        self.tx.clone()
    }

    /// A new watcher: every event from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<MonitorEvent> {
        self.tx.subscribe()
    }

    /// Reads `ring` for as long as the agent runs, on the tokio runtime,
    /// every [`READ_EVERY`].
    pub fn spawn_reader(&self, mut ring: RingBuf<MapData>) -> std::io::Result<()> {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(READ_EVERY);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let offset = clock_offset_ns();
                while let Some(item) = ring.next() {
                    if tx.receiver_count() == 0 || item.len() < size_of::<DropEvent>() {
                        continue;
                    }
                    // SAFETY: a record the datapath wrote as a `DropEvent`,
                    // or a `DropEvent6` (lengths checked); read unaligned.
                    let raw = unsafe { item.as_ptr().cast::<DropEvent>().read_unaligned() };
                    let v6 = (item.len() >= size_of::<DropEvent6>()).then(|| {
                        // SAFETY: as above.
                        unsafe { item.as_ptr().cast::<DropEvent6>().read_unaligned() }
                    });
                    let _ = tx.send(MonitorEvent::from_raw(&raw, v6.as_ref(), offset));
                }
            }
        });
        Ok(())
    }
}

/// Names the endpoint behind each event's interface, from a map of
/// host-side interface names to endpoint names.
#[must_use]
pub fn with_endpoint(mut event: MonitorEvent, by_if: &BTreeMap<String, String>) -> MonitorEvent {
    event.endpoint = event.interface.as_ref().and_then(|i| by_if.get(i)).cloned();
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2026-11-23T10:04:05.123Z
        assert_eq!(
            rfc3339(1_795_428_245_123_000_000),
            "2026-11-23T10:04:05.123Z"
        );
        assert_eq!(rfc3339(951_782_400_000_000_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn a_record_reads_as_a_line() {
        let raw = DropEvent {
            time_ns: 5_000_000,
            reason: DropReason::SpoofedIp.number(),
            ifindex: 0,
            len: 60,
            hook: 0,
            proto: PROTO_UDP,
            ethertype: [0x08, 0x00],
            saddr: [10, 88, 0, 9],
            daddr: [203, 0, 113, 2],
            sport: 4000u16.to_be_bytes(),
            dport: 53u16.to_be_bytes(),
            smac: [2, 0x42, 10, 88, 0, 2],
            pad: [0; 2],
        };
        let e = MonitorEvent::from_raw(&raw, None, 0);
        assert_eq!(e.reason, "spoofed-ip");
        assert_eq!(e.hook, "tc_from_container");
        assert_eq!(
            (e.src.as_str(), e.dst.as_str()),
            ("10.88.0.9:4000", "203.0.113.2:53")
        );
        assert_eq!(
            e.to_string(),
            "1970-01-01T00:00:00.005Z drop spoofed-ip(6) if0 udp 10.88.0.9:4000 -> 203.0.113.2:53 len 60 mac 02:42:0a:58:00:02"
        );
        let arp = DropEvent {
            ethertype: [0x08, 0x06],
            proto: 0,
            ..raw
        };
        let e = MonitorEvent::from_raw(&arp, None, 0);
        assert_eq!((e.proto.as_str(), e.src.as_str()), ("arp", "10.88.0.9"));
        let six = DropEvent6 {
            event: DropEvent {
                ethertype: [0x86, 0xdd],
                proto: PROTO_ICMPV6,
                saddr: [0; 4],
                daddr: [0; 4],
                ..raw
            },
            saddr: "2001:db8:1::2".parse::<Ipv6Addr>().unwrap().octets(),
            daddr: "fd00:89::2".parse::<Ipv6Addr>().unwrap().octets(),
        };
        let e = MonitorEvent::from_raw(&six.event, Some(&six), 0);
        assert_eq!(
            (e.proto.as_str(), e.src.as_str(), e.dst.as_str()),
            ("icmpv6", "2001:db8:1::2", "fd00:89::2")
        );
        let tcp6 = DropEvent6 {
            event: DropEvent {
                proto: PROTO_TCP,
                ..six.event
            },
            ..six
        };
        let e = MonitorEvent::from_raw(&tcp6.event, Some(&tcp6), 0);
        assert_eq!(
            (e.src.as_str(), e.dst.as_str()),
            ("[2001:db8:1::2]:4000", "[fd00:89::2]:53")
        );
        // An IPv6 record read without its addresses shows none.
        assert_eq!(MonitorEvent::from_raw(&six.event, None, 0).src, "-");
    }
}
