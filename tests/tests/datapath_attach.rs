//! The real datapath attached with tcx to a container veth in a test-bed
//! node: real packets, counters read back from the per-CPU maps.

use std::{net::Ipv4Addr, time::Duration};

use weir::datapath::{
    Datapath,
    aya::programs::{SchedClassifier, TcAttachType},
};
use weir_common::{drop::DropReason, network::NetInfo, stats::Hook};
use weir_tests::{
    World, eventually,
    netns::Netns,
    prog::{DEFAULT_FLAGS, net_info},
    sock, world,
};

const HOST_IF: &str = "vc1";
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const C_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

fn world_with_datapath() -> (World, Datapath) {
    let mut w = World::new().unwrap();
    w.add_plain_container("c1", HOST_IF, HOST_IP, C_IP, 24)
        .unwrap();
    // The endpoint's entry as the agent makes it: the program shuts a
    // veth it knows nothing of.
    let mac = w.c("c1").mac("eth0").unwrap();
    let gateway_mac = w.node.mac(HOST_IF).unwrap();
    // tcx resolves the interface name in the calling thread's namespace.
    let dp = w.node.run(|| {
        let mut dp = Datapath::load().unwrap();
        let info = NetInfo {
            gateway_mac,
            ..net_info(1, HOST_IP, DEFAULT_FLAGS)
        };
        dp.set_networks(&[(Ipv4Addr::new(10, 99, 0, 0), 24, info)])
            .unwrap();
        let name = std::ffi::CString::new(HOST_IF).unwrap();
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(ifindex, 0, "{HOST_IF} exists");
        dp.insert_endpoint(ifindex, Some(C_IP), mac, 1).unwrap();
        dp.attach_from_container(HOST_IF).unwrap();
        dp
    });
    (w, dp)
}

#[test]
fn attached_program_counts_real_packets_and_lets_them_pass() {
    let (w, dp) = world_with_datapath();
    let before = dp.hook_stats(Hook::FromContainer).unwrap();
    for _ in 0..3 {
        assert!(world::ping(w.c("c1"), HOST_IP), "ping through the program");
    }
    let after = dp.hook_stats(Hook::FromContainer).unwrap();
    // Three echo requests at least (plus ARP and whatever else the
    // container's stack sent on its own).
    assert!(
        after.packets >= before.packets + 3,
        "{before:?} -> {after:?}"
    );
    assert!(after.bytes >= before.bytes + 3 * 98);
    assert_eq!(dp.drop_stats(DropReason::Malformed).unwrap().packets, 0);
}

/// The programs attached at tcx ingress of `interface` in `ns`, by name,
/// as the kernel reports them (`BPF_PROG_QUERY`).
fn tcx_ingress(ns: &Netns, interface: &str) -> Vec<String> {
    ns.run(|| {
        let (_revision, programs) =
            SchedClassifier::query_tcx(interface, TcAttachType::Ingress).unwrap();
        programs
            .iter()
            .map(|p| p.name_as_str().unwrap_or_default().to_owned())
            .collect()
    })
}

#[test]
fn detached_when_the_datapath_is_dropped() {
    let (w, dp) = world_with_datapath();
    // The kernel truncates program names to 15 characters.
    assert_eq!(tcx_ingress(&w.node, HOST_IF), ["tc_from_contain"]);
    drop(dp);
    // The link ends when its last fd closes. A process another test forks
    // holds a copy of every fd until it execs (CLOEXEC), so the detach may
    // trail the drop by a moment.
    let detached = eventually(Duration::from_secs(2), || {
        tcx_ingress(&w.node, HOST_IF).is_empty().then_some(())
    });
    assert!(
        detached.is_some(),
        "still attached after the datapath was dropped"
    );
}

/// A frame cut inside its IPv4 header, sent with a raw socket from inside
/// the container, is dropped at the veth and counted under `malformed`.
#[test]
fn truncated_frame_from_a_container_is_dropped() {
    let (w, dp) = world_with_datapath();
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0xff; 6]); // broadcast
    frame.extend_from_slice(&w.c("c1").mac("eth0").unwrap());
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    frame.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17]); // 10 of 20 bytes
    w.c("c1").run(|| sock::send_raw("eth0", &frame));
    let dropped = eventually(Duration::from_secs(2), || {
        let c = dp.drop_stats(DropReason::Malformed).unwrap();
        (c.packets > 0).then_some(c)
    })
    .expect("the frame is dropped and counted");
    assert_eq!(dropped.packets, 1);
    assert_eq!(dropped.bytes, frame.len() as u64);
}
