//! Names on user networks, as Docker's embedded DNS gives them: on every
//! weir network but the default one, an endpoint reaches another of its
//! network by its name and by `NAME.NETWORK`, and `host.weir.internal`
//! names the gateway (the node). The agent answers at the network's
//! gateway addresses, port 53, UDP and TCP; every other question goes to
//! the node's resolvers (`--dns-forward`, default `/etc/resolv.conf`'s)
//! and their answer back as it is. Messages are read and written with
//! `hickory-proto`.
//!
//! [`Dns`] holds the listeners and the current [`Names`]; the agent hands
//! it a fresh table whenever it saves its state, and it binds and drops
//! listeners to match (the 2 s tick retries an address not up yet).

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Arc, RwLock},
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, ResponseCode},
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA},
    },
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, UdpSocket},
    task::JoinHandle,
};
use tracing::{debug, warn};

use crate::error::Chain;

/// The gateway's name on every network that has names.
pub const HOST_NAME: &str = "host.weir.internal";
/// How long a forwarded question waits for each resolver.
const FORWARD_WAIT: Duration = Duration::from_secs(2);
/// How long names live in caches: they change with endpoints.
const TTL: u32 = 10;

/// One network's names: lower-case name -> its addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkNames {
    pub names: BTreeMap<String, (Option<Ipv4Addr>, Option<Ipv6Addr>)>,
}

/// Every network's names, by the gateway addresses they are asked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub by_server: BTreeMap<IpAddr, Arc<NetworkNames>>,
}

impl NetworkNames {
    /// A network's table: each endpoint (name, addresses) as `NAME` and
    /// `NAME.NETWORK`, and the gateway as [`HOST_NAME`].
    #[must_use]
    pub fn new(
        network: &str,
        gateway: (Option<Ipv4Addr>, Option<Ipv6Addr>),
        endpoints: &[(String, Option<Ipv4Addr>, Option<Ipv6Addr>)],
    ) -> Self {
        let mut names = BTreeMap::new();
        names.insert(HOST_NAME.to_owned(), gateway);
        for (name, ip, ip6) in endpoints {
            let name = name.to_ascii_lowercase();
            names.insert(
                format!("{name}.{}", network.to_ascii_lowercase()),
                (*ip, *ip6),
            );
            names.insert(name, (*ip, *ip6));
        }
        Self { names }
    }
}

/// What to do with a question.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Answered here: the message to send back.
    Here(Vec<u8>),
    /// Not ours: ask the node's resolvers.
    Forward,
    /// Not a question at all: nothing to send.
    Drop,
}

/// The answer to `query` from `names`.
#[must_use]
pub fn answer(query: &[u8], names: &NetworkNames) -> Reply {
    let Ok(msg) = Message::from_vec(query) else {
        return Reply::Drop;
    };
    if msg.message_type() != MessageType::Query || msg.op_code() != OpCode::Query {
        return Reply::Forward;
    }
    let [q] = msg.queries() else {
        return Reply::Forward;
    };
    let wanted = q.name().to_lowercase().to_ascii();
    let Some(&(ip, ip6)) = names.names.get(wanted.trim_end_matches('.')) else {
        return Reply::Forward;
    };
    let mut out = Message::new();
    out.set_id(msg.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_authoritative(true)
        .set_recursion_desired(msg.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(ResponseCode::NoError)
        .add_query(q.clone());
    let name: Name = q.name().clone();
    match q.query_type() {
        RecordType::A => {
            if let Some(ip) = ip {
                out.add_answer(Record::from_rdata(name, TTL, RData::A(A(ip))));
            }
        }
        RecordType::AAAA => {
            if let Some(ip6) = ip6 {
                out.add_answer(Record::from_rdata(name, TTL, RData::AAAA(AAAA(ip6))));
            }
        }
        // A name of ours has no other records: an empty answer.
        _ => {}
    }
    out.to_vec().map_or(Reply::Drop, Reply::Here)
}

/// The names server: one UDP and one TCP listener per server address.
pub struct Dns {
    names: Arc<RwLock<Names>>,
    upstreams: Arc<Vec<SocketAddr>>,
    listeners: BTreeMap<IpAddr, [JoinHandle<()>; 2]>,
}

impl Dns {
    #[must_use]
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Self {
            names: Arc::default(),
            upstreams: Arc::new(upstreams),
            listeners: BTreeMap::new(),
        }
    }

    /// Takes `names` as the table and listens at exactly its server
    /// addresses (one not up yet is tried again by [`Dns::listen_missing`]).
    pub fn update(&mut self, names: Names) {
        if let Ok(mut table) = self.names.write() {
            *table = names;
        }
        self.listen_missing();
    }

    /// Listens at the table's server addresses it does not listen at yet,
    /// and at no other.
    pub fn listen_missing(&mut self) {
        let wanted: Vec<IpAddr> = match self.names.read() {
            Ok(table) => table.by_server.keys().copied().collect(),
            Err(_) => return,
        };
        self.listeners.retain(|addr, tasks| {
            let keep = wanted.contains(addr);
            if !keep {
                tasks.iter().for_each(JoinHandle::abort);
            }
            keep
        });
        for addr in wanted {
            if self.listeners.contains_key(&addr) {
                continue;
            }
            match self.listen(addr) {
                Ok(tasks) => {
                    debug!(%addr, "answering names");
                    self.listeners.insert(addr, tasks);
                }
                Err(e) => warn!(%addr, "cannot answer names there: {}", Chain(&e)),
            }
        }
    }

    fn listen(&self, addr: IpAddr) -> std::io::Result<[JoinHandle<()>; 2]> {
        let at = SocketAddr::new(addr, 53);
        let udp = std::net::UdpSocket::bind(at)?;
        udp.set_nonblocking(true)?;
        let tcp = std::net::TcpListener::bind(at)?;
        tcp.set_nonblocking(true)?;
        let (udp, tcp) = (UdpSocket::from_std(udp)?, TcpListener::from_std(tcp)?);
        let (names, upstreams) = (self.names.clone(), self.upstreams.clone());
        let udp_task = tokio::spawn(serve_udp(udp, addr, names.clone(), upstreams.clone()));
        let tcp_task = tokio::spawn(serve_tcp(tcp, addr, names, upstreams));
        Ok([udp_task, tcp_task])
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        for tasks in self.listeners.values() {
            tasks.iter().for_each(JoinHandle::abort);
        }
    }
}

/// The reply to `query` asked at `server`: ours, or the resolvers'.
async fn reply(
    query: &[u8],
    server: IpAddr,
    names: &RwLock<Names>,
    upstreams: &[SocketAddr],
) -> Option<Vec<u8>> {
    let table = names.read().ok()?.by_server.get(&server).cloned()?;
    match answer(query, &table) {
        Reply::Here(bytes) => Some(bytes),
        Reply::Drop => None,
        Reply::Forward => Some(
            forward(query, upstreams)
                .await
                .unwrap_or_else(|| servfail(query)),
        ),
    }
}

/// Asks each resolver in turn; the first answer.
async fn forward(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(sock) = UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.send_to(query, up).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65_535];
        if let Ok(Ok(n)) = tokio::time::timeout(FORWARD_WAIT, sock.recv(&mut buf)).await {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

/// `SERVFAIL` for `query` (no resolver answered).
fn servfail(query: &[u8]) -> Vec<u8> {
    let Ok(msg) = Message::from_vec(query) else {
        return Vec::new();
    };
    let mut out = Message::new();
    out.set_id(msg.id())
        .set_message_type(MessageType::Response)
        .set_op_code(msg.op_code())
        .set_recursion_desired(msg.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(ResponseCode::ServFail)
        .add_queries(msg.queries().to_vec());
    out.to_vec().unwrap_or_default()
}

async fn serve_udp(
    sock: UdpSocket,
    server: IpAddr,
    names: Arc<RwLock<Names>>,
    upstreams: Arc<Vec<SocketAddr>>,
) {
    let sock = Arc::new(sock);
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (sock, names, upstreams) = (sock.clone(), names.clone(), upstreams.clone());
        // Each question on its own: a slow resolver holds up no other.
        tokio::spawn(async move {
            if let Some(bytes) = reply(&query, server, &names, &upstreams).await {
                let _ = sock.send_to(&bytes, peer).await;
            }
        });
    }
}

async fn serve_tcp(
    listener: TcpListener,
    server: IpAddr,
    names: Arc<RwLock<Names>>,
    upstreams: Arc<Vec<SocketAddr>>,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let (names, upstreams) = (names.clone(), upstreams.clone());
        tokio::spawn(async move {
            // Messages framed by a 2-byte length, as long as the client
            // keeps asking (each read bounded, so an idle client goes).
            loop {
                let mut len = [0u8; 2];
                let read = tokio::time::timeout(FORWARD_WAIT * 5, stream.read_exact(&mut len));
                if !matches!(read.await, Ok(Ok(_))) {
                    return;
                }
                let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if stream.read_exact(&mut query).await.is_err() {
                    return;
                }
                let Some(bytes) = reply(&query, server, &names, &upstreams).await else {
                    return;
                };
                let Ok(len) = u16::try_from(bytes.len()) else {
                    return;
                };
                if stream.write_all(&len.to_be_bytes()).await.is_err()
                    || stream.write_all(&bytes).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

/// The node's resolvers, from `resolv.conf` text: its `nameserver` lines,
/// port 53.
#[must_use]
pub fn resolvers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The `resolv.conf` of a process on a network whose names are answered
/// at `server`.
#[must_use]
pub fn resolv_conf(server: IpAddr) -> String {
    format!(
        "# written by weir: names answered at the network's gateway\nnameserver {server}\noptions ndots:0\n"
    )
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Query;

    use super::*;

    fn ask(name: &str, kind: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(7)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
        m.to_vec().unwrap()
    }

    fn table() -> NetworkNames {
        NetworkNames::new(
            "Back",
            (Some(Ipv4Addr::new(10, 72, 0, 1)), None),
            &[(
                "Web".to_owned(),
                Some(Ipv4Addr::new(10, 72, 0, 2)),
                Some("fd00:72::2".parse().unwrap()),
            )],
        )
    }

    fn answers(reply: Reply) -> (ResponseCode, Vec<RData>) {
        let Reply::Here(bytes) = reply else {
            panic!("not answered here: {reply:?}");
        };
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!((m.id(), m.message_type()), (7, MessageType::Response));
        (
            m.response_code(),
            m.answers().iter().map(|r| r.data().clone()).collect(),
        )
    }

    #[test]
    fn a_networks_names_are_answered_here_and_the_rest_forwarded() {
        let t = table();
        let web4 = RData::A(A(Ipv4Addr::new(10, 72, 0, 2)));
        for name in ["web.", "WEB", "web.back.", "Web.Back"] {
            assert_eq!(
                answers(answer(&ask(name, RecordType::A), &t)),
                (ResponseCode::NoError, vec![web4.clone()]),
                "{name}"
            );
        }
        assert_eq!(
            answers(answer(&ask("web", RecordType::AAAA), &t)).1,
            [RData::AAAA(AAAA("fd00:72::2".parse().unwrap()))]
        );
        assert_eq!(
            answers(answer(&ask("host.weir.internal", RecordType::A), &t)).1,
            [RData::A(A(Ipv4Addr::new(10, 72, 0, 1)))]
        );
        assert_eq!(
            answers(answer(&ask("host.weir.internal", RecordType::AAAA), &t)),
            (ResponseCode::NoError, vec![]),
            "no IPv6 gateway: an empty answer"
        );
        assert_eq!(answers(answer(&ask("web", RecordType::MX), &t)).1, []);
        assert_eq!(
            answer(&ask("example.com", RecordType::A), &t),
            Reply::Forward
        );
        assert_eq!(answer(&ask("web.front", RecordType::A), &t), Reply::Forward);
        assert_eq!(answer(b"\x00\x01garbage", &t), Reply::Drop);
        let fail = Message::from_vec(&servfail(&ask("example.com", RecordType::A))).unwrap();
        assert_eq!(
            (fail.id(), fail.response_code()),
            (7, ResponseCode::ServFail)
        );
    }

    #[test]
    fn resolvers_come_from_resolv_conf() {
        let conf = "# x\nsearch lan\nnameserver 192.0.2.53\nnameserver  2001:db8::53\noptions edns0\nnameserver bad\n";
        assert_eq!(
            resolvers(conf),
            [
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap()
            ]
        );
        assert!(resolv_conf("10.72.0.1".parse().unwrap()).contains("nameserver 10.72.0.1\n"));
    }
}
