//! The flood: an outside sender floods the node with frames that must be
//! dropped while a `TCP_RR` runs through a published port, for weir with
//! XDP (X), weir with tc only (C), Docker's iptables rules (B: their
//! filter table's drop, and the kernel's martian check) and nftables (B2).
//!
//! The frames, half each: UDP to the container's own address from outside
//! (unsolicited: B and B2 drop it in their forward chains, after routing
//! and a conntrack lookup; weir at its first hook), and UDP from a spoofed
//! loopback source to the node (a bogon: Linux's routing drops it as a
//! martian; weir at its first hook). Sources and ports vary, so that no
//! cache holds the flood.
//!
//! The sender is an `AF_PACKET` socket in `ext` with `PACKET_QDISC_BYPASS`,
//! sending in batches (`sendmmsg`) from a CPU of its own, the RR on the
//! other. On a veth the node's receive path runs on the sender's CPU, in
//! its softirq: the rate one CPU reaches is what one CPU of the node can
//! drop. "Dropped" counts the frames the node took in (sent, less what the
//! veth refused: its queue full, the node behind); the bench says whether
//! the veth refused any (the node saturated before the sender).
//! Every bed's `ext` finishes its own checksums, as a host behind a wire
//! does, so that X's XDP forwards the published port's packets itself, and
//! its uplink has a queue per CPU, as a NIC has (without, XDP on a veth
//! would make the RR's frames wait behind the flood's in one NAPI).

use std::{
    fmt::Write as _,
    io,
    mem::size_of,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use etherparse::PacketBuilder;

use super::{
    Better, Metric, Options, Results, Setup,
    bed::{self, Bed},
    load,
    report::number,
};
use crate::{Netns, World, world::NODE_UPLINK_IP};

/// The setups of the flood comparison.
pub const SETUPS: [Setup; 4] = [
    Setup::WeirXdp,
    Setup::Weir,
    Setup::Iptables,
    Setup::Nftables,
];

/// The CPU the sender runs on; the RR runs on the other one.
const SENDER_CPU: usize = 1;
const RR_CPU: usize = 0;
/// Distinct frames the sender cycles through.
const FRAMES: usize = 1024;
const BATCH: usize = 64;
const PACKET_QDISC_BYPASS: libc::c_int = 20;

/// One flood's figures.
#[derive(Clone, Copy, Debug)]
pub struct Flooded {
    /// Frames the sender handed to the veth, per second.
    pub sent_pps: f64,
    /// Frames the node took in (and must have dropped), per second.
    pub dropped_pps: f64,
    /// Frames the veth refused (the node behind).
    pub refused: u64,
}

/// Runs the comparison: for each setup in each round, the RR through the
/// published port without a flood and then with one, the flood's rate,
/// and new connections through the port.
#[expect(clippy::cast_precision_loss, reason = "frame counts far below 2^52")]
pub fn rounds(opts: &Options) -> io::Result<Vec<Metric>> {
    eprintln!("bench: building the four flood worlds");
    let beds = SETUPS
        .iter()
        .map(|&s| {
            let world = World::with_uplink_queues(2)?;
            world.ext_as_wire()?;
            Bed::in_world(s, world)
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut m = vec![
        Metric::new(
            "flood_pps",
            "flood dropped by the node, one sender CPU",
            "pps",
            Better::Higher,
        ),
        Metric::new(
            "flood_sent_pps",
            "flood offered by the sender",
            "pps",
            Better::Higher,
        ),
        Metric::new(
            "flood_refused",
            "flood frames the veth refused (the node behind the sender)",
            "frames",
            Better::Lower,
        ),
        Metric::new(
            "flood_rr",
            "TCP_RR via the published port during the flood",
            "trans/s",
            Better::Higher,
        ),
        Metric::new(
            "flood_rr_kept",
            "TCP_RR kept during the flood (of the same round's without)",
            "%",
            Better::Higher,
        ),
        Metric::new(
            "quiet_rr",
            "1-byte TCP_RR via the published port, no flood",
            "trans/s",
            Better::Higher,
        ),
        Metric::new(
            "quiet_crr",
            "TCP_CRR via the published port, no flood",
            "conn/s",
            Better::Higher,
        ),
    ];
    let mut refused = Vec::new();
    for round in 0..opts.rounds {
        eprintln!("bench: flood round {}/{}", round + 1, opts.rounds);
        for i in 0..beds.len() {
            let b = &beds[(i + round as usize) % beds.len()];
            let s = b.setup;
            b.echo.pin(Some(RR_CPU));
            let quiet = load::rr(b.ext(), b.echo_target(), opts.secs, Some(RR_CPU));
            let flood = Sender::start(b)?;
            let during = load::rr(b.ext(), b.echo_target(), opts.secs, Some(RR_CPU));
            let f = flood.stop(b)?;
            b.echo.pin(None);
            let crr = load::crr(b.ext(), b.echo_target(), opts.secs, opts.crr_workers);
            m[0].add(s, f.dropped_pps, 0);
            m[1].add(s, f.sent_pps, 0);
            m[2].add(s, f.refused as f64, 0);
            m[3].add(s, during.per_sec, during.errors);
            m[4].add(s, 100.0 * during.per_sec / quiet.per_sec.max(1.0), 0);
            m[5].add(s, quiet.per_sec, quiet.errors);
            m[6].add(s, crr.per_sec, crr.errors);
            if f.refused > 0 {
                refused.push(format!("{}: {}", s.key(), f.refused));
            }
            eprintln!(
                "bench: {} flood sent {:.0} pps, node took {:.0} pps, veth refused {}",
                s.key(),
                f.sent_pps,
                f.dropped_pps,
                f.refused
            );
        }
    }
    if refused.is_empty() {
        eprintln!("bench: the veth refused no frame: the sender, not the node, set the pace");
    } else {
        eprintln!(
            "bench: the node fell behind the sender: {}",
            refused.join(", ")
        );
    }
    Ok(m)
}

/// The flood's frames for bed `b`: to the uplink's MAC, half unsolicited
/// to the container, half from a spoofed loopback source to the node.
fn frames(b: &Bed) -> io::Result<Vec<Vec<u8>>> {
    let dst_mac = b.node().mac(crate::world::UPLINK)?;
    let src_mac = b.ext().mac("eth0")?;
    Ok((0..FRAMES)
        .map(|i| {
            let n = u16::try_from(i).expect("FRAMES fits");
            let [hi, lo] = n.to_be_bytes();
            let (src, dst) = if i % 2 == 0 {
                // 198.18.0.0/15, the benchmarking range: "outside".
                (Ipv4Addr::new(198, 18, hi, lo), bed::CONTAINER)
            } else {
                (Ipv4Addr::LOCALHOST, NODE_UPLINK_IP)
            };
            let builder = PacketBuilder::ethernet2(src_mac, dst_mac)
                .ipv4(src.octets(), dst.octets(), 64)
                .udp(10_000 + n, 53);
            let mut f = Vec::with_capacity(builder.size(18));
            builder.write(&mut f, &[0; 18]).expect("a UDP frame");
            f
        })
        .collect())
}

/// A flood running from `ext`.
struct Sender {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<io::Result<(u64, Duration)>>,
    tx_dropped: u64,
}

impl Sender {
    fn start(b: &Bed) -> io::Result<Self> {
        let frames = frames(b)?;
        let sock = b.ext().run(|| packet_socket("eth0"))?;
        let tx_dropped = tx_dropped(b.ext())?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            load::pin_to(Some(SENDER_CPU));
            send_until(&sock, &frames, &flag)
        });
        // Under way before the RR starts.
        thread::sleep(Duration::from_millis(100));
        Ok(Self {
            stop,
            thread,
            tx_dropped,
        })
    }

    #[expect(clippy::cast_precision_loss, reason = "frame counts far below 2^52")]
    fn stop(self, b: &Bed) -> io::Result<Flooded> {
        self.stop.store(true, Ordering::Relaxed);
        let (sent, took) = self
            .thread
            .join()
            .map_err(|_| io::Error::other("the flood's sender panicked"))??;
        let refused = tx_dropped(b.ext())?.saturating_sub(self.tx_dropped);
        let secs = took.as_secs_f64();
        Ok(Flooded {
            sent_pps: sent as f64 / secs,
            dropped_pps: sent.saturating_sub(refused) as f64 / secs,
            refused,
        })
    }
}

/// An `AF_PACKET` socket bound to `ifname` (in the calling thread's
/// namespace), past the qdisc.
fn packet_socket(ifname: &str) -> io::Result<OwnedFd> {
    let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: plain syscalls; the fd is owned at once.
    unsafe {
        let ifindex = libc::if_nametoindex(name.as_ptr());
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let sock = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        if libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            PACKET_QDISC_BYPASS,
            (&raw const one).cast(),
            socklen::<libc::c_int>(),
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = u16::try_from(libc::AF_PACKET).map_err(io::Error::other)?;
        addr.sll_ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
        if libc::bind(fd, (&raw const addr).cast(), socklen::<libc::sockaddr_ll>()) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }
}

fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).expect("a small struct")
}

/// Sends `frames` round and round in batches until `stop`; returns how
/// many the veth took and for how long.
fn send_until(
    sock: &OwnedFd,
    frames: &[Vec<u8>],
    stop: &AtomicBool,
) -> io::Result<(u64, Duration)> {
    let mut iov: Vec<libc::iovec> = frames
        .iter()
        .map(|f| libc::iovec {
            iov_base: f.as_ptr() as *mut libc::c_void,
            iov_len: f.len(),
        })
        .collect();
    // SAFETY: zeroed `mmsghdr`s are valid; each points at one iovec.
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = &raw mut *v;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let start = Instant::now();
    let (mut sent, mut at) = (0u64, 0usize);
    while !stop.load(Ordering::Relaxed) {
        let n = BATCH.min(msgs.len() - at);
        // SAFETY: `msgs[at..at + n]` are valid headers whose buffers
        // (`frames`, `iov`) outlive the call.
        let rc = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                msgs[at..].as_mut_ptr(),
                u32::try_from(n).expect("a batch"),
                0,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                continue;
            }
            return Err(e);
        }
        sent += u64::try_from(rc).expect("a count");
        at = (at + n) % msgs.len();
    }
    Ok((sent, start.elapsed()))
}

/// `ext`'s `eth0`: frames the veth refused to take so far.
fn tx_dropped(ext: &Netns) -> io::Result<u64> {
    let out = ext.exec("ip", &["-s", "-j", "link", "show", "eth0"])?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(io::Error::other)?;
    v[0]["stats64"]["tx"]["dropped"]
        .as_u64()
        .ok_or_else(|| io::Error::other("no tx dropped counter for ext's eth0"))
}

/// The flood: X (XDP) against C (tc), B (iptables) and B2 (nftables).
#[must_use]
pub fn table(r: &Results) -> String {
    let mut s = String::from(
        "| measurement | unit | X | C | B | B2 | X/C | X/B | X/B2 |\n|---|---|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    for m in &r.flood {
        let cell = |k: &str| m.median(k).map_or("—".to_owned(), |v| number(v, m.unit));
        let ratio = |k: &str| {
            m.ratio_of("X", k)
                .map_or("—".to_owned(), |v| format!("{v:.2}"))
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.title,
            m.unit,
            cell("X"),
            cell("C"),
            cell("B"),
            cell("B2"),
            ratio("C"),
            ratio("B"),
            ratio("B2"),
        );
    }
    s
}

/// The flood's part of the report: how it was made, its setups, its table.
pub fn text(s: &mut String, r: &Results) {
    let o = &r.options;
    let _ = writeln!(
        s,
        "\nThe flood, {} rounds, in four worlds of their own whose `ext` finishes \
         its checksums as a host behind a wire does: an `AF_PACKET` sender \
         (`PACKET_QDISC_BYPASS`, `sendmmsg`) on one CPU floods the node with UDP \
         to the container's own address and from a spoofed 127.0.0.1, while a \
         TCP_RR through the published port runs on the other. On a veth the \
         node's receive path runs on the sender's CPU: the rate is what one CPU \
         drops, sender included. Above 1 means XDP is ahead:\n",
        o.rounds
    );
    for (k, label) in &r.flood_setups {
        let _ = writeln!(
            s,
            "- {k}: {}",
            label.trim_start_matches(|c| c != ' ').trim()
        );
    }
    s.push('\n');
    s.push_str(&table(r));
}
