//! Who reaches whom: TCP, UDP and ping probes from inside namespaces, run
//! all at once (a blocked probe costs its whole timeout), each checked
//! against what it should do. For the isolation matrix.

use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    thread,
    time::Duration,
};

use crate::Netns;

/// How long a probe waits for its answer: a dropped packet costs this.
const WAIT: Duration = Duration::from_millis(1500);

/// One way of knocking.
#[derive(Clone, Copy, Debug)]
pub enum Probe {
    /// Connect and get the echo server's echo back.
    Tcp(SocketAddr),
    /// Send a datagram and get the echo back.
    Udp(SocketAddr),
    /// `ping -c 1`.
    Ping(Ipv4Addr),
}

impl Probe {
    /// Whether the probe, sent from inside `ns`, gets its answer.
    #[must_use]
    pub fn reaches(self, ns: &Netns) -> bool {
        match self {
            Probe::Tcp(to) => ns.run(|| {
                crate::sock::tcp_exchange(to, b"knock", WAIT, WAIT).is_ok_and(|r| r == b"knock")
            }),
            Probe::Udp(to) => ns.run(|| {
                let Ok(s) = UdpSocket::bind("0.0.0.0:0") else {
                    return false;
                };
                let mut buf = [0u8; 16];
                s.set_read_timeout(Some(WAIT)).is_ok()
                    && s.connect(to).is_ok()
                    && s.send(b"knock").is_ok()
                    && s.recv(&mut buf).is_ok_and(|n| &buf[..n] == b"knock")
            }),
            Probe::Ping(to) => ns
                .exec("ping", &["-c", "1", "-W", "1", "-q", &to.to_string()])
                .is_ok(),
        }
    }

    /// TCP, UDP and ping to `ip` (ports `tcp` and `udp`).
    #[must_use]
    pub fn all(ip: Ipv4Addr, tcp: u16, udp: u16) -> [Probe; 3] {
        [
            Probe::Tcp(SocketAddr::from((ip, tcp))),
            Probe::Udp(SocketAddr::from((ip, udp))),
            Probe::Ping(ip),
        ]
    }
}

/// One expectation: from `from` (a label and its namespace), `probe`
/// gets through or not.
pub struct Case<'a> {
    pub label: String,
    pub from: &'a Netns,
    pub probe: Probe,
    pub reaches: bool,
}

/// Runs every case at once; returns those that did not do what they
/// should, described.
#[must_use]
pub fn failures(cases: &[Case<'_>]) -> Vec<String> {
    thread::scope(|s| {
        let running: Vec<_> = cases
            .iter()
            .map(|c| s.spawn(move || (c, c.probe.reaches(c.from))))
            .collect();
        running
            .into_iter()
            .filter_map(|h| {
                let (c, got) = h.join().expect("probe thread");
                (got != c.reaches).then(|| {
                    format!(
                        "{} {:?}: {}",
                        c.label,
                        c.probe,
                        if c.reaches {
                            "blocked, should get through"
                        } else {
                            "got through, should be blocked"
                        }
                    )
                })
            })
            .collect()
    })
}
