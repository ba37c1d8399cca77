//! Servers and clients that live inside a namespace and report what arrived
//! and from which address: the ground truth for NAT tests ("the server saw
//! the client's real address").
//!
//! Servers echo: TCP reads until the peer shuts down its write side, answers
//! with the same bytes and closes; UDP answers every datagram with itself.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use crate::netns::Netns;

/// One request a server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub peer: SocketAddr,
    pub data: Vec<u8>,
}

/// An echo server running inside a namespace until dropped.
pub struct Server {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

const POLL: Duration = Duration::from_millis(5);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

impl Server {
    /// A TCP echo server bound to `addr` in `ns`; listening when this returns.
    pub fn tcp(ns: &Netns, addr: SocketAddr) -> io::Result<Self> {
        let listener = ns.run(|| TcpListener::bind(addr))?;
        listener.set_nonblocking(true)?;
        Ok(Self::start(listener.local_addr()?, move |log, stop| {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        let _ = serve_tcp(stream, |data| {
                            log.lock().expect("log").push(Received { peer, data });
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
                    Err(_) => thread::sleep(POLL),
                }
            }
        }))
    }

    /// A UDP echo server bound to `addr` in `ns`; bound when this returns.
    pub fn udp(ns: &Netns, addr: SocketAddr) -> io::Result<Self> {
        let socket = ns.run(|| UdpSocket::bind(addr))?;
        socket.set_read_timeout(Some(POLL))?;
        Ok(Self::start(socket.local_addr()?, move |log, stop| {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, peer)) = socket.recv_from(&mut buf) {
                    // Logged before the answer, so a client holding the
                    // answer always finds its request in the log.
                    log.lock().expect("log").push(Received {
                        peer,
                        data: buf[..n].to_vec(),
                    });
                    let _ = socket.send_to(&buf[..n], peer);
                }
            }
        }))
    }

    fn start(
        addr: SocketAddr,
        body: impl FnOnce(Arc<Mutex<Vec<Received>>>, Arc<AtomicBool>) + Send + 'static,
    ) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            thread::spawn(move || body(log, stop))
        };
        Self {
            addr,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// The address the server is bound to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything received so far, in order.
    #[must_use]
    pub fn received(&self) -> Vec<Received> {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads the request to its end, logs it, then echoes it: a client holding
/// the answer always finds its request in the log.
fn serve_tcp(mut stream: TcpStream, log: impl FnOnce(Vec<u8>)) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut data = Vec::new();
    stream.read_to_end(&mut data)?;
    log(data.clone());
    stream.write_all(&data)
}

/// From inside `ns`: connects to `to`, sends `data`, shuts down the write
/// side and returns everything the server sent back.
pub fn tcp_request(ns: &Netns, to: SocketAddr, data: &[u8]) -> io::Result<Vec<u8>> {
    ns.run(|| {
        let mut stream = TcpStream::connect_timeout(&to, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(data)?;
        stream.shutdown(Shutdown::Write)?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
        Ok(reply)
    })
}

/// From inside `ns`: sends one datagram to `to` (from `from`, or an ephemeral
/// port) and returns the answer.
pub fn udp_request(
    ns: &Netns,
    from: Option<SocketAddr>,
    to: SocketAddr,
    data: &[u8],
) -> io::Result<Vec<u8>> {
    ns.run(|| {
        let socket = UdpSocket::bind(from.unwrap_or_else(|| "0.0.0.0:0".parse().expect("addr")))?;
        socket.set_read_timeout(Some(IO_TIMEOUT))?;
        socket.connect(to)?;
        socket.send(data)?;
        let mut buf = vec![0u8; 65536];
        let n = socket.recv(&mut buf)?;
        buf.truncate(n);
        Ok(buf)
    })
}
