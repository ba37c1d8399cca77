//! End-to-end: a hostile or broken API client against a real `weir
//! agent`, spoken to in raw HTTP on its socket. Malformed JSON, a wrong
//! type, a body over the limit, an unknown route or method: each gets its
//! 4xx with `{"error": ...}` at once and leaves nothing made. A client
//! sending a byte a second is cut off within the limit while others are
//! served; a thousand clients at once are all answered. `--socket-group`
//! gives the socket to a group; an unknown group is refused at start.

use std::{
    io::{Read as _, Write as _},
    os::unix::{fs::MetadataExt as _, net::UnixStream},
    path::Path,
    time::{Duration, Instant},
};

use weir_tests::{
    World,
    agent::{Agent, weir_bin},
};

/// Sends `request` (a whole HTTP/1.1 request) and reads the answer to its
/// end: the status and the body.
fn raw(socket: &Path, request: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // A server that refuses a body over its limit answers before reading
    // it all, and the rest of the write fails: the answer is still there.
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: weir\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn error_of(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {body}"))
        .to_owned()
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let w = World::new().unwrap();
    let agent = Agent::start(&w, &[]);
    let before = agent.ok(&["network", "ls", "--json"]);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("not JSON", post("/v1/networks", "{\"name\": \"x\","), 400, "JSON"),
        ("a wrong type", post("/v1/networks", "{\"name\": 7}"), 422, "name"),
        (
            "a bad subnet",
            post("/v1/networks", "{\"name\": \"x\", \"subnet\": \"10.1.0.0/99\"}"),
            422,
            "subnet",
        ),
        (
            "over the limit",
            post("/v1/networks", &format!("{{\"name\": \"{}\"}}", "x".repeat(2 << 20))),
            413,
            "over",
        ),
        (
            "an unknown route",
            b"GET /v2/everything HTTP/1.1\r\nHost: weir\r\nConnection: close\r\n\r\n".to_vec(),
            404,
            "no API route GET /v2/everything",
        ),
        (
            "a wrong method",
            b"PUT /v1/networks HTTP/1.1\r\nHost: weir\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_vec(),
            405,
            "does not take PUT",
        ),
    ];
    for (what, request, status, says) in cases {
        let t = Instant::now();
        let (got, body) = raw(&agent.socket, &request);
        assert_eq!(got, status, "{what}: {body}");
        let e = error_of(&body);
        assert!(e.contains(says), "{what}: {e}");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{what} took {:?}",
            t.elapsed()
        );
    }
    assert_eq!(
        agent.ok(&["network", "ls", "--json"]),
        before,
        "nothing was made"
    );
    assert!(agent.log_text().lines().all(|l| !l.contains("panicked")));
}

#[test]
fn a_slow_client_is_cut_off_while_others_are_served() {
    let w = World::new().unwrap();
    let agent = Agent::start(&w, &[]);
    let socket = agent.socket.clone();
    // Sends `now` at once, then `slowly` a byte a second.
    let slow = |now: &'static [u8], slowly: &'static [u8]| {
        let socket = socket.clone();
        std::thread::spawn(move || {
            let mut s = UnixStream::connect(&socket).unwrap();
            let t = Instant::now();
            s.write_all(now).unwrap();
            // A byte a second, until the agent answers or closes.
            let mut answer = Vec::new();
            for b in slowly.iter().cycle() {
                if s.write_all(&[*b]).is_err() || t.elapsed() > Duration::from_secs(30) {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
                let mut peek = [0u8; 1];
                s.set_nonblocking(true).unwrap();
                let got = s.read(&mut peek);
                s.set_nonblocking(false).unwrap();
                if let Ok(n) = got {
                    answer.extend_from_slice(&peek[..n]);
                    let _ = s.read_to_end(&mut answer);
                    break;
                }
            }
            (t.elapsed(), String::from_utf8_lossy(&answer).into_owned())
        })
    };
    let headers = slow(b"", b"POST /v1/networks HTTP/1.1\r\nHost: weir\r\n");
    let body = slow(
        b"POST /v1/networks HTTP/1.1\r\nHost: weir\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        b"{\"name\": \"slow\"",
    );
    // Meanwhile the others are served at once.
    for _ in 0..5 {
        let t = Instant::now();
        agent.ok(&["status"]);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        std::thread::sleep(Duration::from_millis(500));
    }
    for (what, h) in [("headers", headers), ("body", body)] {
        let (took, answer) = h.join().unwrap();
        assert!(
            took < Duration::from_secs(15),
            "a client slow with its {what} was held {took:?}"
        );
        if what == "body" {
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
            assert!(answer.contains("did not arrive within 5 s"), "{answer:?}");
        }
    }
    assert!(!agent.ok(&["network", "ls"]).contains("slow"));
}

#[test]
fn a_thousand_clients_at_once_are_all_answered() {
    let w = World::new().unwrap();
    let agent = Agent::start(&w, &[]);
    let t = Instant::now();
    let clients: Vec<_> = (0..1000)
        .map(|_| {
            let socket = agent.socket.clone();
            std::thread::spawn(move || {
                raw(
                    &socket,
                    b"GET /v1/status HTTP/1.1\r\nHost: weir\r\nConnection: close\r\n\r\n",
                )
                .0
            })
        })
        .collect();
    let ok = clients
        .into_iter()
        .map(|c| c.join().unwrap())
        .filter(|s| *s == 200)
        .count();
    assert_eq!(ok, 1000);
    eprintln!("1000 concurrent clients answered in {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_mins(1));
}

#[test]
fn the_socket_group_may_use_the_socket_and_an_unknown_one_is_refused() {
    let w = World::new().unwrap();
    let agent = Agent::start(&w, &["--socket-group", "daemon"]);
    let meta = std::fs::metadata(&agent.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660);
    assert_eq!((meta.uid(), meta.gid()), (0, 1), "root:daemon");
    drop(agent);
    let out = std::process::Command::new(weir_bin())
        .args(["agent", "--socket-group", "no-such-group-here"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no group `no-such-group-here`"), "{err}");
}
