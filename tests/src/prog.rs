//! `BPF_PROG_TEST_RUN` on the real datapath programs: load the object the
//! agent embeds, seed its maps, run a program on a frame, and look at the
//! verdict, the bytes that came out and the maps.

use std::net::Ipv4Addr;

use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
use weir::datapath::Datapath;
use weir_common::{
    event::{DropEvent, DropEvent6},
    network::{NET_ICC, NET_MASQUERADE, NetInfo, NetInfo6},
};

use crate::packet::{MAC_CONTAINER, MAC_HOST};

/// What a program did with one frame.
#[derive(Debug)]
pub struct Outcome {
    /// The program's return value (`TC_ACT_*` or `XDP_*`).
    pub verdict: i32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
}

/// tc verdicts, as the kernel numbers them.
pub const TC_ACT_OK: i32 = 0;
pub const TC_ACT_SHOT: i32 = 2;
/// XDP verdicts.
pub const XDP_DROP: i32 = 1;
pub const XDP_PASS: i32 = 2;

/// The interface `BPF_PROG_TEST_RUN` hands tc programs their packets on
/// (`lo`): the "veth" of the container the tests put there.
pub const TEST_IFINDEX: u32 = 1;

/// A network's flags as Docker's defaults make them: icc and masquerade.
pub const DEFAULT_FLAGS: u32 = NET_ICC | NET_MASQUERADE;

/// A network as the agent enters it in `NETWORKS4`; the bridge's MAC is
/// [`MAC_HOST`], the destination of the frames the tests build.
#[must_use]
pub fn net_info(id: u32, gateway: Ipv4Addr, flags: u32) -> NetInfo {
    NetInfo {
        id,
        gateway: gateway.octets(),
        snat_ip: [0; 4],
        flags,
        gateway_mac: MAC_HOST,
        pad: [0; 2],
    }
}

/// The node address of the masquerade tests, on `lo` ([`TEST_IFINDEX`]).
pub const MASQ_NODE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// A node whose uplink is `lo` with address [`MASQ_NODE`], masquerade on
/// `ports`, and network 1 at `10.88.0.0/16` (gateway `.0.1`) with `flags`.
pub fn masquerading_node(dp: &mut Datapath, flags: u32, ports: (u16, u16)) {
    dp.configure(ports).unwrap();
    dp.set_uplinks(&[(TEST_IFINDEX, MASQ_NODE)]).unwrap();
    let info = net_info(1, Ipv4Addr::new(10, 88, 0, 1), flags);
    dp.set_networks(&[(Ipv4Addr::new(10, 88, 0, 0), 16, info)])
        .unwrap();
}

/// Runs `f` in a namespace of its own (`tag` in its name), deleted after.
pub fn in_own_ns<R: Send>(tag: &str, f: impl FnOnce() -> R + Send) -> R {
    crate::Netns::create(&format!("{}-{tag}", crate::netns::unique_stem()))
        .expect("netns")
        .run(f)
}

/// The MAC of [`node_ns`]'s veth `up0`.
pub const NODE_NS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The MAC of [`node_ns`]'s resolved neighbour `203.0.113.2`.
pub const NODE_NS_NEIGHBOUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// A namespace of its own for one `BPF_PROG_TEST_RUN` test (which runs
/// in the caller's namespace): a forwarding node with `203.0.113.1/24` on
/// a veth (MAC [`NODE_NS_MAC`]) and `203.0.113.2` a resolved neighbour
/// ([`NODE_NS_NEIGHBOUR_MAC`]), so the fast path's FIB lookups have a
/// deterministic answer. Deleted when dropped.
#[must_use]
pub fn node_ns(tag: &str) -> crate::Netns {
    let ns =
        crate::Netns::create(&format!("{}-{tag}", crate::netns::unique_stem())).expect("netns");
    for args in [
        &[
            "link",
            "add",
            "up0",
            "address",
            "02:00:00:00:00:01",
            "type",
            "veth",
            "peer",
            "name",
            "up1",
        ][..],
        &["addr", "add", "203.0.113.1/24", "dev", "up0"],
        &["link", "set", "up0", "up"],
        &["link", "set", "up1", "up"],
        &[
            "neigh",
            "add",
            "203.0.113.2",
            "lladdr",
            "02:00:00:00:00:02",
            "dev",
            "up0",
        ],
    ] {
        ns.ip(args).expect("ip");
    }
    ns.sysctl("net.ipv4.ip_forward", "1").expect("forwarding");
    ns
}

/// The MAC [`node_ns6`]'s resolved IPv6 neighbour `2001:db8:1::2` has
/// (the same host as [`node_ns`]'s IPv4 one).
pub const NODE_NS_NEIGHBOUR6: &str = "2001:db8:1::2";

/// [`node_ns`] speaking IPv6 too: `2001:db8:1::1/64` on `up0`, the
/// neighbour `2001:db8:1::2` resolved ([`NODE_NS_NEIGHBOUR_MAC`]) and
/// the default route through it, `2001:db8:7::/64` through
/// `2001:db8:1::3`, whose MAC nobody has asked for yet; IPv6 forwarding
/// on (the FIB answers a forwarding node's lookups only).
#[must_use]
pub fn node_ns6(tag: &str) -> crate::Netns {
    let ns = node_ns(tag);
    for args in [
        &[
            "-6",
            "addr",
            "add",
            "2001:db8:1::1/64",
            "dev",
            "up0",
            "nodad",
        ][..],
        &[
            "-6",
            "neigh",
            "add",
            NODE_NS_NEIGHBOUR6,
            "lladdr",
            "02:00:00:00:00:02",
            "dev",
            "up0",
        ],
        &["-6", "route", "add", "default", "via", NODE_NS_NEIGHBOUR6],
        &[
            "-6",
            "route",
            "add",
            "2001:db8:7::/64",
            "via",
            "2001:db8:1::3",
        ],
    ] {
        ns.ip(args).expect("ip");
    }
    ns.sysctl("net.ipv6.conf.all.forwarding", "1")
        .expect("forwarding");
    ns
}

/// A freshly loaded datapath with its own maps: tests never share state.
pub struct Harness {
    pub datapath: Datapath,
    networks: Vec<(Ipv4Addr, u8, NetInfo)>,
    networks6: Vec<(std::net::Ipv6Addr, u8, NetInfo6)>,
}

impl Harness {
    #[must_use]
    pub fn load() -> Self {
        Self {
            datapath: Datapath::load().expect("load the datapath object"),
            networks: Vec::new(),
            networks6: Vec::new(),
        }
    }

    /// A fresh datapath with one network: `10.88.0.0/16`, id 1, gateway
    /// `10.88.0.1`, Docker's default flags.
    #[must_use]
    pub fn with_one_network() -> Self {
        let mut h = Self::load();
        h.network(
            Ipv4Addr::new(10, 88, 0, 0),
            16,
            net_info(1, Ipv4Addr::new(10, 88, 0, 1), DEFAULT_FLAGS),
        );
        h
    }

    /// A fresh datapath with one dual-stack network, id 1: `10.89.0.0/24`
    /// (gateway `.1`) and `fd00:89::/64` (gateway `::1`), both with
    /// `flags`; masquerade on ports 30000-30999. `NAT66` tests build on it.
    #[must_use]
    pub fn dual_stack(flags: u32) -> Self {
        let mut h = Self::load();
        h.datapath.configure((30000, 30999)).expect("CONFIG");
        h.network(
            Ipv4Addr::new(10, 89, 0, 0),
            24,
            net_info(1, Ipv4Addr::new(10, 89, 0, 1), flags),
        );
        h.network6("fd00:89::/64", 1, flags, "fd00:89::1");
        h
    }

    /// Adds a network (`subnet/prefix`) to `NETWORKS4`, in place of what
    /// that subnet had.
    pub fn network(&mut self, subnet: Ipv4Addr, prefix: u8, info: NetInfo) {
        self.networks
            .retain(|(a, p, _)| (*a, *p) != (subnet, prefix));
        self.networks.push((subnet, prefix, info));
        self.datapath
            .set_networks(&self.networks)
            .expect("NETWORKS4");
    }

    /// Gives network `id` the IPv6 side `subnet` (`fd00:89::/64`, say) with
    /// `flags` and `gateway` in `NETWORKS6`, in place of what that subnet
    /// had.
    pub fn network6(&mut self, subnet: &str, id: u32, flags: u32, gateway: &str) {
        let (addr, prefix) = subnet.split_once('/').expect("ADDR/PREFIX");
        let (addr, prefix) = (
            addr.parse().expect("an IPv6 subnet"),
            prefix.parse().expect("a prefix"),
        );
        let gateway = gateway
            .parse::<std::net::Ipv6Addr>()
            .expect("an IPv6 gateway")
            .octets();
        self.networks6
            .retain(|(a, p, _)| (*a, *p) != (addr, prefix));
        self.networks6
            .push((addr, prefix, NetInfo6 { id, flags, gateway }));
        self.datapath
            .set_networks6(&self.networks6)
            .expect("NETWORKS6");
    }

    /// Puts the node in a cluster: `ranges` (address, prefix, `CLUSTER_*`
    /// flags) in `CLUSTER4` and `CLUSTER6`, in place of what they held.
    pub fn cluster(&mut self, ranges: &[(&str, u8, u32)]) {
        let ranges: Vec<_> = ranges
            .iter()
            .map(|&(addr, prefix, flags)| (addr.parse().expect("an address"), prefix, flags))
            .collect();
        self.datapath
            .set_cluster(&ranges)
            .expect("CLUSTER4 and CLUSTER6");
    }

    /// Makes the container behind [`TEST_IFINDEX`] the one with address
    /// `ip` and MAC [`MAC_CONTAINER`], in network `network_id`.
    pub fn container(&mut self, ip: Ipv4Addr, network_id: u32) {
        self.datapath
            .insert_endpoint(TEST_IFINDEX, Some(ip), MAC_CONTAINER, network_id)
            .expect("ENDPOINTS");
    }

    /// Every drop event waiting in `EVENTS`, oldest first (read, so a
    /// second call sees only newer ones); an IPv6 packet's without its
    /// addresses (see [`Harness::events6`]).
    #[must_use]
    pub fn events(&mut self) -> Vec<DropEvent> {
        self.records()
            .into_iter()
            .map(|r| match r {
                Ok(e) => e,
                Err(e6) => e6.event,
            })
            .collect()
    }

    /// The IPv6 packets' drop events waiting in `EVENTS` (the others read
    /// and left out).
    #[must_use]
    pub fn events6(&mut self) -> Vec<DropEvent6> {
        self.records().into_iter().filter_map(Result::err).collect()
    }

    /// The records in `EVENTS`: `Ok` a [`DropEvent`], `Err` a [`DropEvent6`].
    fn records(&mut self) -> Vec<Result<DropEvent, DropEvent6>> {
        let map = self
            .datapath
            .ebpf_mut()
            .map_mut("EVENTS")
            .expect("EVENTS map");
        let mut ring = aya::maps::RingBuf::try_from(map).expect("a ring buffer");
        let mut events = Vec::new();
        while let Some(item) = ring.next() {
            // SAFETY: each record is one the datapath wrote, of the type
            // its length says; read unaligned.
            let record = match item.len() {
                n if n == size_of::<DropEvent>() => {
                    Ok(unsafe { item.as_ptr().cast::<DropEvent>().read_unaligned() })
                }
                n if n == size_of::<DropEvent6>() => {
                    Err(unsafe { item.as_ptr().cast::<DropEvent6>().read_unaligned() })
                }
                n => panic!("a record of {n} bytes in EVENTS"),
            };
            events.push(record);
        }
        events
    }

    /// Runs `tc_from_container` on `frame` as sent by the container whose
    /// address is the frame's source (entered in `ENDPOINTS` first).
    #[must_use]
    pub fn from_container(&mut self, frame: &[u8], network_id: u32) -> Outcome {
        let src = crate::packet::view(frame).src;
        self.container(src, network_id);
        self.run_tc("tc_from_container", frame)
    }

    /// The loaded tc program `program`.
    #[must_use]
    pub fn tc_program(&mut self, program: &str) -> &SchedClassifier {
        self.datapath
            .ebpf_mut()
            .program(program)
            .unwrap_or_else(|| panic!("no program {program}"))
            .try_into()
            .expect("a tc program")
    }

    /// Runs the tc program `program` once on `frame`.
    #[must_use]
    pub fn run_tc(&mut self, program: &str, frame: &[u8]) -> Outcome {
        self.run_tc_repeated(program, frame, 1)
    }

    /// Runs the tc program `program` `repeat` times on one skb made from
    /// `frame` (each run sees what the one before left); the outcome is
    /// the last run's.
    #[must_use]
    pub fn run_tc_repeated(&mut self, program: &str, frame: &[u8], repeat: u32) -> Outcome {
        self.try_run_tc(program, frame, repeat)
            .expect("BPF_PROG_TEST_RUN")
    }

    /// [`Harness::run_tc_repeated`], with the kernel's refusal of the frame
    /// (`EINVAL`: shorter than an Ethernet header, say) as an error.
    pub fn try_run_tc(
        &mut self,
        program: &str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<Outcome, aya::programs::ProgramError> {
        test_run(self.tc_program(program), frame, repeat)
    }

    /// Runs the XDP program `program` once on `frame` (it sees it as
    /// arriving on `lo`).
    #[must_use]
    pub fn run_xdp(&mut self, program: &str, frame: &[u8]) -> Outcome {
        self.run_xdp_repeated(program, frame, 1)
    }

    /// The loaded XDP program `program`.
    #[must_use]
    pub fn xdp_program(&mut self, program: &str) -> &aya::programs::Xdp {
        self.datapath
            .ebpf_mut()
            .program(program)
            .unwrap_or_else(|| panic!("no program {program}"))
            .try_into()
            .expect("an XDP program")
    }

    /// Runs the XDP program `program` `repeat` times on `frame` (each run
    /// on what the one before left); the outcome is the last run's.
    #[must_use]
    pub fn run_xdp_repeated(&mut self, program: &str, frame: &[u8], repeat: u32) -> Outcome {
        self.try_run_xdp(program, frame, repeat)
            .expect("BPF_PROG_TEST_RUN")
    }

    /// [`Harness::run_xdp_repeated`], with the kernel's refusal of the
    /// frame as an error.
    pub fn try_run_xdp(
        &mut self,
        program: &str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<Outcome, aya::programs::ProgramError> {
        test_run(self.xdp_program(program), frame, repeat)
    }
}

/// One `BPF_PROG_TEST_RUN` of `prog` on `frame`, `repeat` times.
fn test_run<P>(prog: &P, frame: &[u8], repeat: u32) -> Result<Outcome, aya::programs::ProgramError>
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = aya::programs::TestRunResult>,
{
    // Room for programs that grow the frame.
    let mut out = vec![0u8; frame.len() + 256];
    let result = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        repeat,
        ..TestRunOptions::default()
    })?;
    out.truncate(result.data_size_out as usize);
    Ok(Outcome {
        // Verdicts are small signed numbers (TC_ACT_UNSPEC is -1).
        verdict: i32::from_ne_bytes(result.return_value.to_ne_bytes()),
        frame: out,
    })
}
