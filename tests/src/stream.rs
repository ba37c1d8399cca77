//! A long TCP transfer and its trace: a server that sends a steady stream
//! to whoever connects, and a reader that counts what arrives and the
//! longest time nothing did. The ground truth for "the flow survived".

use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::netns::Netns;

/// What the server writes at a time, and how often: about 3 MB/s, enough to
/// see a stall of a few milliseconds, little enough to leave the CPUs to
/// the agent.
const CHUNK: usize = 16 * 1024;
const EVERY: Duration = Duration::from_millis(5);

/// A server in a namespace that streams to each client until it goes away
/// or the server is dropped.
pub struct StreamServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StreamServer {
    /// Listens on `addr` in `ns` (listening when this returns).
    pub fn start(ns: &Netns, addr: SocketAddr) -> io::Result<Self> {
        let listener = ns.run(|| TcpListener::bind(addr))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let flag = Arc::clone(&flag);
                        thread::spawn(move || send_until_gone(stream, &flag));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn send_until_gone(mut stream: TcpStream, stop: &AtomicBool) {
    let chunk = vec![0x5a_u8; CHUNK];
    let _ = stream.set_nonblocking(false);
    while !stop.load(Ordering::Relaxed) {
        if stream.write_all(&chunk).is_err() {
            return;
        }
        thread::sleep(EVERY);
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a transfer went.
#[derive(Debug)]
pub struct Trace {
    /// Bytes received in all.
    pub bytes: u64,
    /// The longest time between two reads that brought data.
    pub longest_stall: Duration,
    /// How the transfer ended early, if it did (a reset, an end of
    /// stream): `None` when it ran until it was stopped.
    pub error: Option<String>,
}

/// A client reading a [`StreamServer`]'s stream on a thread of its own.
pub struct StreamReader {
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    thread: thread::JoinHandle<Trace>,
}

impl StreamReader {
    /// Connects from `ns` to `to` and starts reading.
    pub fn start(ns: &Netns, to: SocketAddr) -> io::Result<Self> {
        let mut stream = ns.run(|| TcpStream::connect_timeout(&to, Duration::from_secs(3)))?;
        stream.set_read_timeout(Some(Duration::from_millis(100)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(AtomicU64::new(0));
        let (flag, count) = (Arc::clone(&stop), Arc::clone(&bytes));
        let thread = thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut last = Instant::now();
            let mut longest = Duration::ZERO;
            let mut error = None;
            while !flag.load(Ordering::Relaxed) {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        error = Some("the server closed the stream".to_owned());
                        break;
                    }
                    Ok(n) => {
                        longest = longest.max(last.elapsed());
                        last = Instant::now();
                        count.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => {
                        error = Some(e.to_string());
                        break;
                    }
                }
            }
            longest = longest.max(last.elapsed());
            Trace {
                bytes: count.load(Ordering::Relaxed),
                longest_stall: longest,
                error,
            }
        });
        Ok(Self {
            stop,
            bytes,
            thread,
        })
    }

    /// Bytes received so far.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Stops reading and says how it went.
    #[must_use]
    pub fn finish(self) -> Trace {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("reader thread")
    }
}
