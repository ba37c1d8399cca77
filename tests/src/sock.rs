//! Servers and clients that live inside a namespace and report what arrived
//! and from which address: the ground truth for NAT tests ("the server saw
//! the client's real address").
//!
//! Servers echo: TCP reads until the peer shuts down its write side, answers
//! with the same bytes and closes; UDP answers every datagram with itself.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
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
        Self::tcp_with(ns, addr, serve_echo)
    }

    /// A minimal HTTP/1.1 server: answers every request with 200 and the
    /// body `hello <client address>`; logs the request head.
    pub fn http(ns: &Netns, addr: SocketAddr) -> io::Result<Self> {
        Self::tcp_with(ns, addr, serve_http)
    }

    /// A server that speaks first: on accept it sends
    /// `hello <client address>\n` and closes, reading nothing.
    pub fn banner(ns: &Netns, addr: SocketAddr) -> io::Result<Self> {
        Self::tcp_with(ns, addr, |mut stream, peer| {
            stream.write_all(format!("hello {peer}\n").as_bytes())?;
            Ok(Vec::new())
        })
    }

    /// A TCP server that runs `serve` on each connection in turn and logs
    /// what it returns (before the connection closes).
    fn tcp_with(
        ns: &Netns,
        addr: SocketAddr,
        serve: fn(TcpStream, SocketAddr) -> io::Result<Vec<u8>>,
    ) -> io::Result<Self> {
        let listener = ns.run(|| TcpListener::bind(addr))?;
        listener.set_nonblocking(true)?;
        Ok(Self::start(listener.local_addr()?, move |log, stop| {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        let _ = stream
                            .set_nonblocking(false)
                            .and_then(|()| stream.set_read_timeout(Some(IO_TIMEOUT)));
                        let logged = Arc::clone(&log);
                        let _ = serve_logged(stream, peer, serve, &logged);
                    }
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

    /// The IPv4 addresses of the peers, in order: who the server saw.
    #[must_use]
    pub fn peer_ips(&self) -> Vec<std::net::Ipv4Addr> {
        self.received()
            .iter()
            .filter_map(|r| match r.peer {
                SocketAddr::V4(a) => Some(*a.ip()),
                SocketAddr::V6(_) => None,
            })
            .collect()
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

/// Runs `serve`; what it returns is logged before the stream is closed,
/// so a client that saw the end of its answer finds itself in the log.
fn serve_logged(
    stream: TcpStream,
    peer: SocketAddr,
    serve: fn(TcpStream, SocketAddr) -> io::Result<Vec<u8>>,
    log: &Mutex<Vec<Received>>,
) -> io::Result<()> {
    let keep = stream.try_clone()?;
    let data = serve(stream, peer)?;
    log.lock().expect("log").push(Received { peer, data });
    keep.shutdown(Shutdown::Both)
}

/// Reads the request to its end, then echoes it.
fn serve_echo(mut stream: TcpStream, _peer: SocketAddr) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    stream.read_to_end(&mut data)?;
    stream.write_all(&data)?;
    Ok(data)
}

/// Reads a request head and answers `hello <peer>`, the body delimited by
/// the connection's close.
fn serve_http(mut stream: TcpStream, peer: SocketAddr) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte)? == 1 {
        head.push(byte[0]);
    }
    // No Content-Length: the body ends when the connection closes, which
    // is after the request is logged, so a client that has its answer
    // always finds its request in the log.
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello {peer}\n"
    )?;
    Ok(head)
}

/// From inside `ns`: connects to `to`, sends `data`, shuts down the write
/// side and returns everything the server sent back.
pub fn tcp_request(ns: &Netns, to: SocketAddr, data: &[u8]) -> io::Result<Vec<u8>> {
    ns.run(|| tcp_exchange(to, data, IO_TIMEOUT, IO_TIMEOUT))
}

/// From inside `ns`: as [`tcp_request`], from the source port `port`
/// (`SO_REUSEADDR`, so that a connection of that port that has just
/// closed does not stand in the way).
pub fn tcp_request_from(ns: &Netns, port: u16, to: SocketAddr, data: &[u8]) -> io::Result<Vec<u8>> {
    use socket2::{Domain, Socket, Type};
    ns.run(|| {
        let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        let from: SocketAddr = match to {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, port).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, port).into(),
        };
        socket.bind(&from.into())?;
        socket.connect_timeout(&to.into(), IO_TIMEOUT)?;
        exchange(TcpStream::from(socket), data, IO_TIMEOUT)
    })
}

/// In the calling thread's namespace: connects to `to` (within `connect`),
/// sends `data`, shuts down the write side and returns everything the
/// server sent back (each read within `read`).
pub fn tcp_exchange(
    to: SocketAddr,
    data: &[u8],
    connect: Duration,
    read: Duration,
) -> io::Result<Vec<u8>> {
    exchange(TcpStream::connect_timeout(&to, connect)?, data, read)
}

/// On a connected `stream`: sends `data`, shuts down the write side and
/// returns everything the server sent back (each read within `read`).
fn exchange(mut stream: TcpStream, data: &[u8], read: Duration) -> io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(read))?;
    stream.write_all(data)?;
    stream.shutdown(Shutdown::Write)?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    Ok(reply)
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

/// Sends one raw Ethernet frame out of `ifname` (in the calling thread's
/// namespace) with an `AF_PACKET` socket: for frames no socket API would
/// send, such as a truncated header or a destination of 127.0.0.1.
pub fn send_raw(ifname: &str, frame: &[u8]) {
    let name = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: plain syscalls on a socket this function owns.
    unsafe {
        let ifindex = libc::if_nametoindex(name.as_ptr());
        assert_ne!(ifindex, 0, "no interface {ifname}");
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(fd >= 0, "AF_PACKET socket");
        let fd = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = u16::try_from(libc::AF_PACKET).unwrap();
        addr.sll_ifindex = i32::try_from(ifindex).unwrap();
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        let sent = libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&raw const addr).cast(),
            u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).unwrap(),
        );
        assert_eq!(
            sent,
            isize::try_from(frame.len()).unwrap(),
            "{}",
            std::io::Error::last_os_error()
        );
    }
}

/// `ip:port` as a `SocketAddr`.
#[must_use]
pub fn at(ip: std::net::Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

/// Every address, `port`: where servers bind.
#[must_use]
pub fn any(port: u16) -> SocketAddr {
    at(std::net::Ipv4Addr::UNSPECIFIED, port)
}

/// From inside `ns`: whether a TCP connection to `to` fails (refused, or
/// no answer within 2 s).
#[must_use]
pub fn connect_fails(ns: &Netns, to: SocketAddr) -> bool {
    ns.run(|| TcpStream::connect_timeout(&to, Duration::from_secs(2)).is_err())
}
