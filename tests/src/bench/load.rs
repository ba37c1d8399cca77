//! The load of the benchmark: small Rust clients and servers on plain
//! blocking sockets, each made inside the namespace it belongs to.
//!
//! - [`Server`]: an echo server (1-byte request/response, new connections)
//!   or a sink (throughput), with a few acceptor threads;
//! - [`rr`]: one connection, 1-byte request and answer, as netperf's
//!   `TCP_RR`;
//! - [`crr`]: a new connection per 1-byte transaction, as netperf's
//!   `TCP_CRR`; the client closes with a reset (`SO_LINGER` 0), so no
//!   `TIME_WAIT` socket piles up;
//! - [`stream`]: one connection writing as fast as it can, measured at the
//!   server, with the CPU the whole machine spent meanwhile.
//!
//! A client and the server thread that serves it can be pinned to CPUs
//! ([`pin_to`], [`Server::pin`]), as `netperf -T` does: where the
//! scheduler puts two threads on a small VM varies more from run to run
//! than the datapaths differ.

use std::{
    io::{self, Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::Netns;

/// How a [`Server`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Writes back what it reads.
    Echo,
    /// Reads and counts, never answers.
    Sink,
}

/// A TCP server inside a namespace. Stopped (and its threads joined) on
/// drop.
pub struct Server {
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    /// The CPU the next connections are served on ([`ANY_CPU`]: any).
    cpu: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

const ANY_CPU: usize = usize::MAX;

/// Acceptor threads per server: each serves one connection at a time, so
/// this bounds the connections a server has open at once.
const ACCEPTORS: usize = 6;

impl Server {
    /// Listens on `[::]:port` inside `ns`: both families.
    pub fn start(ns: &Netns, port: u16, mode: Mode) -> io::Result<Self> {
        let listener = ns.run(|| TcpListener::bind(("::", port)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let cpu = Arc::new(AtomicUsize::new(ANY_CPU));
        let mut threads = Vec::new();
        for _ in 0..ACCEPTORS {
            let listener = listener.try_clone()?;
            let stop = Arc::clone(&stop);
            let received = Arc::clone(&received);
            let cpu = Arc::clone(&cpu);
            threads.push(thread::spawn(move || {
                // Where this thread runs now: changed only when asked, not
                // with a syscall per connection.
                let mut on = ANY_CPU;
                // One buffer per thread, not per connection: zeroing
                // 256 KiB for each of thousands of connections a second
                // cost the server more than the connection itself.
                let mut buf = vec![0u8; 256 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((conn, _)) = listener.accept() {
                        let wanted = cpu.load(Ordering::Relaxed);
                        if wanted != on {
                            pin_to((wanted != ANY_CPU).then_some(wanted));
                            on = wanted;
                        }
                        serve(conn, mode, &received, &mut buf);
                    }
                }
            }));
        }
        Ok(Self {
            listener,
            stop,
            received,
            cpu,
            threads,
        })
    }

    /// Serves the connections accepted from now on on `cpu` (`None`: on
    /// any CPU).
    pub fn pin(&self, cpu: Option<usize>) {
        self.cpu.store(cpu.unwrap_or(ANY_CPU), Ordering::Relaxed);
    }

    /// Bytes read by the server so far.
    #[must_use]
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

fn serve(mut conn: TcpStream, mode: Mode, received: &AtomicU64, buf: &mut [u8]) {
    let _ = conn.set_nodelay(true);
    loop {
        match conn.read(buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                received.fetch_add(n as u64, Ordering::Relaxed);
                if mode == Mode::Echo && conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the threads blocked in accept(2) with an error.
        // SAFETY: shutdown(2) on a socket this server owns.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Request/response on one connection.
#[derive(Clone, Debug, Default)]
pub struct Rr {
    pub transactions: u64,
    pub per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub errors: u64,
}

/// One connection from `ns` to `to`, 1-byte requests and answers for
/// `secs`, the client on `cpu`.
#[must_use]
pub fn rr(ns: &Netns, to: impl Into<SocketAddr>, secs: f64, cpu: Option<usize>) -> Rr {
    let to: SocketAddr = to.into();
    let path = ns.path();
    let worker = thread::spawn(move || {
        enter(&path);
        pin_to(cpu);
        let mut lat = Vec::with_capacity(200_000);
        let mut errors = 0;
        let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(2)) else {
            return (lat, 1, 0.0);
        };
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut b = [0u8; 1];
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(secs);
        while Instant::now() < end {
            let t = Instant::now();
            if s.write_all(&[1]).is_err() || s.read_exact(&mut b).is_err() {
                errors += 1;
                break;
            }
            lat.push(elapsed_ns(t));
        }
        (lat, errors, start.elapsed().as_secs_f64())
    });
    let (mut lat, errors, took) = worker.join().expect("rr worker");
    lat.sort_unstable();
    Rr {
        transactions: lat.len() as u64,
        per_sec: rate(lat.len() as u64, took),
        p50_us: percentile_us(&lat, 0.50),
        p99_us: percentile_us(&lat, 0.99),
        errors,
    }
}

/// New connections, each one 1-byte transaction.
#[derive(Clone, Debug, Default)]
pub struct Crr {
    pub connections: u64,
    pub per_sec: f64,
    pub p50_us: f64,
    pub errors: u64,
    /// Kernel CPU time (system, irq and softirq, all CPUs) per connection,
    /// in microseconds: what the rate hides when clients and servers
    /// saturate the machine's CPUs. Everything the kernel did meanwhile is
    /// in it, the sockets' own work too, alike in every setup.
    pub kernel_us: f64,
}

/// `workers` threads in `ns`, each opening a connection to `to`, sending a
/// byte, reading it back and closing, for `secs`.
#[must_use]
pub fn crr(ns: &Netns, to: impl Into<SocketAddr>, secs: f64, workers: usize) -> Crr {
    let to: SocketAddr = to.into();
    let kernel_before = cpu_times().kernel;
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let path = ns.path();
            thread::spawn(move || {
                enter(&path);
                let mut lat = Vec::with_capacity(100_000);
                let mut errors = 0u64;
                let start = Instant::now();
                let end = start + Duration::from_secs_f64(secs);
                let mut b = [0u8; 1];
                while Instant::now() < end {
                    let t = Instant::now();
                    let ok = TcpStream::connect_timeout(&to, Duration::from_secs(1)).and_then(
                        |mut s| {
                            s.set_nodelay(true)?;
                            s.set_read_timeout(Some(Duration::from_secs(1)))?;
                            s.write_all(&[1])?;
                            s.read_exact(&mut b)?;
                            close_with_reset(&s);
                            Ok(())
                        },
                    );
                    match ok {
                        Ok(()) => lat.push(elapsed_ns(t)),
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors, start.elapsed().as_secs_f64())
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut took: f64 = 0.0;
    for h in handles {
        let (l, e, t) = h.join().expect("crr worker");
        lat.extend(l);
        errors += e;
        took = took.max(t);
    }
    let kernel = cpu_times().kernel - kernel_before;
    lat.sort_unstable();
    Crr {
        connections: lat.len() as u64,
        per_sec: rate(lat.len() as u64, took),
        p50_us: percentile_us(&lat, 0.50),
        errors,
        #[expect(clippy::cast_precision_loss, reason = "far below 2^52")]
        kernel_us: kernel * 1e6 / (lat.len() as f64).max(1.0),
    }
}

/// `SO_LINGER` 0: the close sends a reset and leaves no `TIME_WAIT`
/// socket behind, so a client making thousands of connections a second
/// never runs short of ports (the kernel's search for a free one would
/// otherwise grow with every `TIME_WAIT` socket and skew the figures).
fn close_with_reset(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a valid `linger`.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            u32::try_from(size_of::<libc::linger>()).expect("small"),
        );
    }
}

/// One bulk TCP stream.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    pub gbit_per_sec: f64,
    /// Busy CPUs of the whole machine (1.0 = one core) per Gbit/s.
    pub cpu_per_gbit: f64,
    pub errors: u64,
}

/// One connection from `ns` to `to` writing 128 KiB at a time for `secs`,
/// the writer on `cpu`; the rate is what `sink` received in the measured
/// window (after a 0.3 s warm-up).
#[must_use]
pub fn stream(
    ns: &Netns,
    to: impl Into<SocketAddr>,
    sink: &Server,
    secs: f64,
    cpu: Option<usize>,
) -> Stream {
    let to: SocketAddr = to.into();
    let path = ns.path();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            enter(&path);
            pin_to(cpu);
            let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(2)) else {
                return 1u64;
            };
            let buf = vec![7u8; 128 * 1024];
            while !stop.load(Ordering::Relaxed) {
                if s.write_all(&buf).is_err() {
                    return 1;
                }
            }
            let _ = s.shutdown(Shutdown::Both);
            0
        })
    };
    thread::sleep(Duration::from_millis(300));
    let (b0, c0, t0) = (sink.received(), cpu_times().busy, Instant::now());
    thread::sleep(Duration::from_secs_f64(secs));
    let (b1, c1, took) = (
        sink.received(),
        cpu_times().busy,
        t0.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    let errors = writer.join().expect("stream writer");
    #[expect(clippy::cast_precision_loss, reason = "byte counts far below 2^52")]
    let gbit = (b1 - b0) as f64 * 8.0 / took / 1e9;
    let cores = (c1 - c0) / took;
    Stream {
        gbit_per_sec: gbit,
        cpu_per_gbit: if gbit > 0.0 { cores / gbit } else { 0.0 },
        errors,
    }
}

/// Seconds of CPU time of all CPUs since boot, from `/proc/stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct CpuTimes {
    /// Neither idle nor waiting for I/O.
    busy: f64,
    /// In the kernel: system, irq and softirq.
    kernel: f64,
}

fn cpu_times() -> CpuTimes {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    #[expect(clippy::cast_precision_loss, reason = "a small number")]
    parse_cpu_times(&stat, hz as f64)
}

/// The first (`cpu`, all CPUs) line of `/proc/stat`, in jiffies of
/// `1 / hz` seconds: user nice system idle iowait irq softirq steal ...
fn parse_cpu_times(stat: &str, hz: f64) -> CpuTimes {
    let Some(line) = stat.lines().next().filter(|l| l.starts_with("cpu ")) else {
        return CpuTimes::default();
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let total: u64 = v.iter().take(8).sum();
    let idle = at(3) + at(4);
    #[expect(clippy::cast_precision_loss, reason = "jiffies far below 2^52")]
    let secs = |jiffies: u64| jiffies as f64 / hz;
    CpuTimes {
        busy: secs(total - idle),
        kernel: secs(at(2) + at(5) + at(6)),
    }
}

fn enter(path: &Path) {
    weir::netns::enter(&PathBuf::from(path)).expect("setns into a bench namespace");
}

/// Keeps the calling thread on `cpu`, or lets it run anywhere (`None`).
/// A CPU the machine does not have leaves the thread where it was.
pub fn pin_to(cpu: Option<usize>) {
    // Not `available_parallelism`: that counts the CPUs this thread may
    // already be pinned to.
    // SAFETY: sysconf has no preconditions.
    let cpus = usize::try_from(unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }).unwrap_or(1);
    if cpu.is_some_and(|c| c >= cpus) {
        return;
    }
    // SAFETY: an all-zero `cpu_set_t` is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for c in cpu.map_or(0..cpus, |c| c..c + 1) {
        // SAFETY: `c` is below the number of CPUs, far below the set's size.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: the set is valid and of the size we pass; pid 0 is this thread.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) };
}

fn elapsed_ns(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX)
}

fn rate(n: u64, secs: f64) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let n = n as f64;
    if secs > 0.0 { n / secs } else { 0.0 }
}

/// The `q` quantile of sorted nanoseconds, in microseconds.
fn percentile_us(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a slice of at most millions"
    )]
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert!((percentile_us(&v, 0.5) - 51.0).abs() < 1e-9);
        assert!((percentile_us(&v, 0.99) - 99.0).abs() < 1e-9);
        assert!((percentile_us(&[], 0.5)).abs() < 1e-9);
    }

    #[test]
    fn cpu_times_split_busy_and_kernel() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let stat = "cpu  100 10 200 5000 40 3 7 50 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        let t = parse_cpu_times(stat, 100.0);
        assert!((t.busy - 3.7).abs() < 1e-9, "{t:?}");
        assert!((t.kernel - 2.1).abs() < 1e-9, "{t:?}");
        assert_eq!(parse_cpu_times("intr 1 2\n", 100.0), CpuTimes::default());
    }
}
