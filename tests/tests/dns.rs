//! End-to-end: names on a user network (Docker's embedded DNS). The agent
//! answers at the network's gateway, UDP and TCP: an endpoint's name and
//! `NAME.NETWORK`, `host.weir.internal`; every other name goes to the
//! node's resolvers (`--dns-forward`, here a server in ext) and back as
//! they answer; the default network has no names; `weir run` gives its
//! command a `resolv.conf` pointing there (a private mount: the node's is
//! untouched), so `curl http://web/` reaches a neighbour by name; names
//! leave with their endpoints.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, TcpStream, UdpSocket},
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, Query, ResponseCode},
    rr::{Name, RData, Record, RecordType, rdata::A},
};
use weir_tests::{
    Netns, World,
    agent::Agent,
    eventually,
    sock::{Server, any},
    world::EXT_IP,
};

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 72, 0, 1);
/// What the resolver in ext says `example.test` is.
const EXAMPLE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn question(name: &str) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(42)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

/// The A records (or the error code) `server` answers for `name`, asked
/// from `ns` over UDP; `None`: no answer within a second.
fn ask(ns: &Netns, server: Ipv4Addr, name: &str) -> Option<Result<Vec<Ipv4Addr>, ResponseCode>> {
    let reply = ns.run(|| {
        let s = UdpSocket::bind("0.0.0.0:0").ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.send_to(&question(name), (server, 53)).ok()?;
        let mut buf = [0u8; 1500];
        let n = s.recv(&mut buf).ok()?;
        Some(buf[..n].to_vec())
    })?;
    Some(records(&reply))
}

/// The same over TCP.
fn ask_tcp(ns: &Netns, server: Ipv4Addr, name: &str) -> Result<Vec<Ipv4Addr>, ResponseCode> {
    let reply = ns.run(|| {
        let mut s =
            TcpStream::connect_timeout(&(server, 53).into(), Duration::from_secs(2)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let q = question(name);
        s.write_all(&u16::try_from(q.len()).unwrap().to_be_bytes())
            .unwrap();
        s.write_all(&q).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).unwrap();
        buf
    });
    records(&reply)
}

fn records(reply: &[u8]) -> Result<Vec<Ipv4Addr>, ResponseCode> {
    let m = Message::from_vec(reply).unwrap();
    assert_eq!(m.id(), 42);
    if m.response_code() != ResponseCode::NoError {
        return Err(m.response_code());
    }
    Ok(m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect())
}

/// A resolver in ext: `example.test` is [`EXAMPLE`], nothing else is.
fn upstream(ext: &Netns) {
    let sock = ext.run(|| UdpSocket::bind((EXT_IP, 53))).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::new();
            r.set_id(q.id())
                .set_message_type(MessageType::Response)
                .add_queries(q.queries().to_vec());
            let name = q.queries()[0].name().clone();
            if name.to_ascii().trim_end_matches('.') == "example.test" {
                r.add_answer(Record::from_rdata(name, 60, RData::A(A(EXAMPLE))));
            } else {
                r.set_response_code(ResponseCode::NXDomain);
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), peer);
        }
    });
}

#[test]
fn a_user_network_names_its_endpoints_and_forwards_the_rest() {
    let mut w = World::new().unwrap();
    for c in ["web", "cli", "d"] {
        w.add_container(c).unwrap();
    }
    upstream(&w.ext);
    let agent = Agent::start(&w, &["--dns-forward", &EXT_IP.to_string()]);
    agent.ok(&["network", "create", "named", "--subnet", "10.72.0.0/24"]);
    let web = agent.attach("named", w.c("web"), "web", &[]);
    agent.attach("named", w.c("cli"), "cli", &[]);
    let cli = w.c("cli");
    let first = eventually(Duration::from_secs(5), || ask(cli, GATEWAY, "web"));
    assert_eq!(first, Some(Ok(vec![web])));
    assert_eq!(ask(cli, GATEWAY, "WEB.named."), Some(Ok(vec![web])));
    assert_eq!(
        ask(cli, GATEWAY, "host.weir.internal"),
        Some(Ok(vec![GATEWAY]))
    );
    assert_eq!(ask_tcp(cli, GATEWAY, "web"), Ok(vec![web]));
    // The rest: the node's resolvers' answers.
    assert_eq!(ask(cli, GATEWAY, "example.test"), Some(Ok(vec![EXAMPLE])));
    assert_eq!(
        ask(cli, GATEWAY, "nope.test"),
        Some(Err(ResponseCode::NXDomain))
    );
    assert_eq!(ask_tcp(cli, GATEWAY, "example.test"), Ok(vec![EXAMPLE]));

    // The default network has none.
    agent.attach("weir", w.c("d"), "d", &[]);
    assert_eq!(ask(w.c("d"), Ipv4Addr::new(10, 203, 0, 1), "web"), None);
    let view: serde_json::Value =
        serde_json::from_str(&agent.ok(&["network", "inspect", "named"])).unwrap();
    assert_eq!(view["dns"], "10.72.0.1");

    // `weir run`: a resolv.conf of its own, and names through libc.
    let http = Server::http(w.c("web"), any(80)).unwrap();
    let node_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let conf = agent.ok(&["run", "--network", "named", "--", "cat", "/etc/resolv.conf"]);
    assert!(conf.contains("nameserver 10.72.0.1"), "{conf}");
    assert_eq!(
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        node_conf
    );
    let body = agent.ok(&[
        "run",
        "--name",
        "byname",
        "--network",
        "named",
        "--",
        "curl",
        "-sS",
        "--max-time",
        "5",
        "http://web/",
    ]);
    assert!(body.starts_with("hello 10.72.0."), "{body}");
    assert_eq!(http.received().len(), 1);

    // A name leaves with its endpoint.
    agent.ok(&["detach", "web"]);
    assert_eq!(ask(cli, GATEWAY, "web"), Some(Err(ResponseCode::NXDomain)));
}
