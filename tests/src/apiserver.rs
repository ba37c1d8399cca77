//! A stand-in for kube-apiserver: as much of its Node API as kube-rs's
//! watcher uses, over plain HTTP/1.1 without authentication, listening in
//! a namespace of the bed. No kube-apiserver can run on weir's machine;
//! this lets the agent's real client (kube-rs, its watcher and backoff)
//! follow Node objects that a test adds, changes and deletes.
//!
//! It answers, as the API does (the request lines it saw are kept, see
//! [`ApiServer::requests`]):
//! - `GET /api/v1/nodes` (the list; kube-rs 5's watcher sends
//!   `?&limit=500`): a `NodeList` with `metadata.resourceVersion`, paged by
//!   `limit` with a `continue` token (`VERSION.OFFSET`) honoured on the
//!   next page; any `resourceVersion` asked is ignored (the current state
//!   is served, which "0" and "not older than" allow);
//! - `GET /api/v1/nodes?watch=true&resourceVersion=N` (kube-rs sends
//!   `?&watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=N`,
//!   `N` the list's version or the last event's): a chunked stream of
//!   `WatchEvent`s, one JSON object a line (`ADDED`, `MODIFIED`,
//!   `DELETED` of every change after `N`, then a `BOOKMARK` of the
//!   current version when bookmarks are allowed, then each change as it
//!   happens) until `timeoutSeconds` or the server stops; a version it no
//!   longer has (older than [`ApiServer::forget_history`]) or never had
//!   gets the API's `ERROR` event with a 410 `Expired` status, after which
//!   a client lists again; `N` empty or `0` starts with an `ADDED` of each
//!   node;
//! - anything else: 404 with a `Status` body, and a line on stderr.
//!
//! The nodes and their history live in the server, not in its listener:
//! [`ApiServer::stop`] closes the listener and every connection (as an
//! apiserver that went away), [`ApiServer::start`] opens them again, the
//! versions going on from where they were (as etcd keeps them).

use std::{
    collections::BTreeMap,
    io::{self, BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::Netns;

/// The port it listens on (kube-apiserver's secure port, here plain).
pub const PORT: u16 = 6443;

/// The nodes, their changes, and what was asked.
#[derive(Default)]
struct State {
    /// The last change's version (`metadata.resourceVersion`).
    version: u64,
    nodes: BTreeMap<String, Value>,
    /// Every change: its version, `ADDED`/`MODIFIED`/`DELETED`, the object.
    history: Vec<(u64, &'static str, Value)>,
    /// Changes up to this version are forgotten (etcd's compaction).
    compacted: u64,
    requests: Vec<String>,
}

struct Store {
    state: Mutex<State>,
    changed: Condvar,
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The open connections: a handle on each socket (to shut it down) and
/// the thread serving it.
type Conns = Arc<Mutex<Vec<(TcpStream, JoinHandle<()>)>>>;

/// A listener and its connections, while the server runs.
struct Serving {
    stop: Arc<AtomicBool>,
    accept: JoinHandle<()>,
    conns: Conns,
}

/// The stand-in apiserver; stopped on drop.
pub struct ApiServer {
    addr: SocketAddr,
    netns: PathBuf,
    store: Arc<Store>,
    serving: Mutex<Option<Serving>>,
}

/// How often the listener looks for a connection or a stop.
const POLL: Duration = Duration::from_millis(5);

impl ApiServer {
    /// Serves `nodes` (Node objects; each gets a version) at `addr` in
    /// `ns`; listening when this returns.
    pub fn new(ns: &Netns, addr: SocketAddr, nodes: Vec<Value>) -> io::Result<Self> {
        let server = Self {
            addr,
            netns: ns.path(),
            store: Arc::new(Store {
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            }),
            serving: Mutex::new(None),
        };
        for node in nodes {
            server.apply(node);
        }
        server.start()?;
        Ok(server)
    }

    /// `http://ADDR`, what a kubeconfig names.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server (no credentials: it asks for none).
    #[must_use]
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: bed\n  cluster:\n    server: {}\n\
             contexts:\n- name: bed\n  context:\n    cluster: bed\n    user: bed\n\
             current-context: bed\nusers:\n- name: bed\n  user: {{}}\n",
            self.url()
        )
    }

    /// Opens the listener again (after [`ApiServer::stop`]); it listens
    /// when this returns.
    pub fn start(&self) -> io::Result<()> {
        let mut serving = self.serving.lock().unwrap_or_else(PoisonError::into_inner);
        if serving.is_some() {
            return Ok(());
        }
        let listener = bind_in(&self.netns, self.addr)?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Conns::default();
        let accept = {
            let (stop, conns, store) = (stop.clone(), conns.clone(), self.store.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((stream, _)) = listener.accept() else {
                        thread::sleep(POLL);
                        continue;
                    };
                    let _ = stream.set_nonblocking(false);
                    let Ok(mine) = stream.try_clone() else {
                        continue;
                    };
                    let (stop, store) = (stop.clone(), store.clone());
                    let handle = thread::spawn(move || serve(stream, &store, &stop));
                    conns
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((mine, handle));
                }
            })
        };
        *serving = Some(Serving {
            stop,
            accept,
            conns,
        });
        Ok(())
    }

    /// Closes the listener and every connection, a watch's included, and
    /// waits for their threads.
    pub fn stop(&self) {
        let serving = self
            .serving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(serving) = serving else { return };
        serving.stop.store(true, Ordering::Relaxed);
        self.store.changed.notify_all();
        let _ = serving.accept.join();
        let conns =
            std::mem::take(&mut *serving.conns.lock().unwrap_or_else(PoisonError::into_inner));
        for (stream, handle) in conns {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            let _ = handle.join();
        }
    }

    /// Adds `node`, or replaces the node of its name (`ADDED` or
    /// `MODIFIED`); returns its version.
    pub fn apply(&self, mut node: Value) -> u64 {
        let name = node["metadata"]["name"]
            .as_str()
            .expect("a Node has metadata.name")
            .to_owned();
        let mut state = self.store.lock();
        state.version += 1;
        let version = state.version;
        node["metadata"]["resourceVersion"] = json!(version.to_string());
        let kind = if state.nodes.contains_key(&name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        state.history.push((version, kind, node.clone()));
        state.nodes.insert(name, node);
        drop(state);
        self.store.changed.notify_all();
        version
    }

    /// Deletes node `name` (`DELETED`), if there is one.
    pub fn delete(&self, name: &str) {
        let mut state = self.store.lock();
        let Some(mut node) = state.nodes.remove(name) else {
            return;
        };
        state.version += 1;
        let version = state.version;
        node["metadata"]["resourceVersion"] = json!(version.to_string());
        state.history.push((version, "DELETED", node));
        drop(state);
        self.store.changed.notify_all();
    }

    /// The node `name`, as served.
    #[must_use]
    pub fn node(&self, name: &str) -> Option<Value> {
        self.store.lock().nodes.get(name).cloned()
    }

    /// Forgets every change so far (etcd's compaction): a watch from an
    /// older version is then told 410 Gone, and its client lists again.
    pub fn forget_history(&self) {
        let mut state = self.store.lock();
        state.compacted = state.version;
        state.history.clear();
    }

    /// The request lines (`GET /api/v1/nodes?...`) seen so far, in order.
    #[must_use]
    pub fn requests(&self) -> Vec<String> {
        self.store.lock().requests.clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A listener bound to `addr` in the namespace at `netns`: bound on a
/// thread that entered it (the socket stays in that namespace).
fn bind_in(netns: &std::path::Path, addr: SocketAddr) -> io::Result<TcpListener> {
    thread::scope(|s| {
        s.spawn(|| {
            weir::netns::enter(netns)?;
            TcpListener::bind(addr)
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// One connection: requests in turn (HTTP/1.1 keep-alive) until it closes.
fn serve(stream: TcpStream, store: &Store, stop: &AtomicBool) {
    let Ok(read) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read);
    let mut out = stream;
    while !stop.load(Ordering::Relaxed) {
        let Some(target) = read_request(&mut reader) else {
            return;
        };
        store.lock().requests.push(target.clone());
        let (method, rest) = target.split_once(' ').unwrap_or((&target, ""));
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let query = parse_query(query);
        let param = |k: &str| query.get(k).map_or("", String::as_str);
        let answered = match (method, path) {
            ("GET", "/api/v1/nodes") if matches!(param("watch"), "true" | "1") => {
                watch(&mut out, store, stop, &query)
            }
            ("GET", "/api/v1/nodes") => {
                let body = list(store, param("limit"), param("continue"));
                respond(&mut out, "200 OK", &body)
            }
            _ => {
                eprintln!("apiserver stand-in: no answer to {target:?}: 404");
                let status = status(
                    404,
                    "NotFound",
                    &format!("the stand-in does not serve {target}"),
                );
                respond(&mut out, "404 Not Found", &status)
            }
        };
        if answered.is_err() {
            return;
        }
    }
}

/// The next request's method and target (`GET /api/v1/nodes?...`), its
/// headers read and any body skipped; `None` at the end of the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    // Tolerate blank lines between requests, as HTTP/1.1 servers do.
    while line.trim().is_empty() {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
    }
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let mut words = line.split_whitespace();
    Some(format!("{} {}", words.next()?, words.next()?))
}

/// `a=1&b=x%2Cy` as a map (values percent-decoded).
fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A page of the `NodeList`: `limit` nodes from the `continue` token's
/// offset, at the token's version (else the current one).
fn list(store: &Store, limit: &str, token: &str) -> Value {
    let state = store.lock();
    let (version, offset) = token
        .split_once('.')
        .and_then(|(v, o)| Some((v.parse::<u64>().ok()?, o.parse::<usize>().ok()?)))
        .unwrap_or((state.version, 0));
    let limit = limit
        .parse::<usize>()
        .ok()
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let items: Vec<Value> = state
        .nodes
        .values()
        .skip(offset)
        .take(limit)
        .cloned()
        .collect();
    let next = offset.saturating_add(items.len());
    let mut metadata = json!({"resourceVersion": version.to_string()});
    if next < state.nodes.len() {
        metadata["continue"] = json!(format!("{version}.{next}"));
        metadata["remainingItemCount"] = json!(state.nodes.len() - next);
    }
    json!({"kind": "NodeList", "apiVersion": "v1", "metadata": metadata, "items": items})
}

/// A watch: the changes after the asked version, then each one as it
/// comes, until its timeout or the server's stop.
fn watch(
    out: &mut TcpStream,
    store: &Store,
    stop: &AtomicBool,
    query: &BTreeMap<String, String>,
) -> io::Result<()> {
    let param = |k: &str| query.get(k).map_or("", String::as_str);
    let timeout = Duration::from_secs(param("timeoutSeconds").parse().unwrap_or(1800));
    let deadline = Instant::now() + timeout;
    let bookmarks = param("allowWatchBookmarks") == "true";
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )?;
    let mut state = store.lock();
    let mut sent = match param("resourceVersion") {
        "" | "0" => {
            let now: Vec<Value> = state.nodes.values().cloned().collect();
            for node in now {
                chunk(out, &json!({"type": "ADDED", "object": node}))?;
            }
            state.version
        }
        v => match v.parse::<u64>() {
            Ok(v) if v >= state.compacted && v <= state.version => v,
            _ => {
                drop(state);
                let gone = status(410, "Expired", &format!("too old resource version: {v}"));
                chunk(out, &json!({"type": "ERROR", "object": gone}))?;
                return end(out);
            }
        },
    };
    let mut bookmark_due = bookmarks;
    loop {
        let new: Vec<(u64, &'static str, Value)> = state
            .history
            .iter()
            .filter(|(v, _, _)| *v > sent)
            .cloned()
            .collect();
        let version = state.version;
        drop(state);
        for (v, kind, object) in new {
            chunk(out, &json!({"type": kind, "object": object}))?;
            sent = v;
        }
        if bookmark_due {
            let mark = json!({"kind": "Node", "apiVersion": "v1",
                              "metadata": {"resourceVersion": version.to_string()}});
            chunk(out, &json!({"type": "BOOKMARK", "object": mark}))?;
            sent = sent.max(version);
            bookmark_due = false;
        }
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) || now >= deadline {
            return end(out);
        }
        state = store.lock();
        if state.version <= sent {
            state = store
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// One watch event, a line of JSON, as one chunk.
fn chunk(out: &mut TcpStream, event: &Value) -> io::Result<()> {
    let line = format!("{event}\n");
    write!(out, "{:x}\r\n{line}\r\n", line.len())?;
    out.flush()
}

/// The end of a chunked body.
fn end(out: &mut TcpStream) -> io::Result<()> {
    out.write_all(b"0\r\n\r\n")?;
    out.flush()
}

fn respond(out: &mut TcpStream, code: &str, body: &Value) -> io::Result<()> {
    let body = body.to_string();
    write!(
        out,
        "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    out.flush()
}

/// The API's `Status` object for an error.
fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
           "status": "Failure", "message": message, "reason": reason, "code": code})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_in_pages_at_one_version() {
        let store = Store {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        };
        {
            let mut state = store.lock();
            for n in ["a", "b", "c"] {
                state.version += 1;
                state
                    .nodes
                    .insert(n.to_owned(), json!({"metadata": {"name": n}}));
            }
        }
        let first = list(&store, "2", "");
        assert_eq!(first["metadata"]["resourceVersion"], "3");
        assert_eq!(first["metadata"]["continue"], "3.2");
        assert_eq!(first["items"].as_array().unwrap().len(), 2);
        store.lock().version = 9;
        let last = list(&store, "2", "3.2");
        assert_eq!(last["metadata"]["resourceVersion"], "3", "the first page's");
        assert!(last["metadata"].get("continue").is_none());
        assert_eq!(last["items"][0]["metadata"]["name"], "c");
        assert_eq!(list(&store, "", "")["items"].as_array().unwrap().len(), 3);
        assert_eq!(
            parse_query("&watch=true&labelSelector=a%3Db+c"),
            BTreeMap::from([
                ("watch".to_owned(), "true".to_owned()),
                ("labelSelector".to_owned(), "a=b c".to_owned())
            ])
        );
    }
}
