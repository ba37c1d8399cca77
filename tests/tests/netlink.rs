//! The agent's netlink verbs, run inside a test-bed node: idempotent, and
//! checked with iproute2 (an oracle independent of rtnetlink).

use std::net::Ipv4Addr;

use weir::netlink::Netlink;
use weir_tests::{Netns, World};

fn in_ns<T: Send>(ns: &Netns, f: impl AsyncFnOnce(Netlink) -> T + Send) -> T {
    ns.run(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { f(Netlink::connect().unwrap()).await })
    })
}

fn addr_show(ns: &Netns, dev: &str) -> String {
    let out = ns.ip(&["-4", "-o", "addr", "show", "dev", dev]).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The bridge's MAC the test asks for.
const MAC: [u8; 6] = [0x02, 0x42, 0x0a, 0xcb, 0x00, 0x01];

#[test]
fn bridge_is_made_once_and_deleted_once() {
    let w = World::new().unwrap();
    let gw = Ipv4Addr::new(10, 203, 0, 1);
    let (first, second) = in_ns(&w.node, async |nl| {
        let a = nl
            .ensure_bridge("weir0", Some((gw, 16)), MAC)
            .await
            .unwrap();
        let b = nl
            .ensure_bridge("weir0", Some((gw, 16)), MAC)
            .await
            .unwrap();
        (a, b)
    });
    assert_eq!(first, second, "the second call finds the same bridge");
    let addrs = addr_show(&w.node, "weir0");
    assert_eq!(addrs.matches("inet ").count(), 1, "{addrs}");
    assert!(addrs.contains("inet 10.203.0.1/16"), "{addrs}");
    let link = w.node.ip(&["-d", "link", "show", "weir0"]).unwrap();
    let link = String::from_utf8_lossy(&link.stdout).into_owned();
    assert!(link.contains("bridge") && link.contains(",UP"), "{link}");
    assert!(link.contains("link/ether 02:42:0a:cb:00:01"), "{link}");

    let (deleted, again, index) = in_ns(&w.node, async |nl| {
        let d = nl.delete_link("weir0").await.unwrap();
        let a = nl.delete_link("weir0").await.unwrap();
        let i = nl.link_index("weir0").await.unwrap();
        (d, a, i)
    });
    assert!(deleted && !again);
    assert_eq!(index, None);
    assert!(w.node.ip(&["link", "show", "weir0"]).is_err());
}
