//! One benchmark world per setup, all of the same shape: the test bed's
//! `node` and `ext`, one container `c1` at `172.18.0.2` and `fd00:18::2`
//! (dual stack) on a bridge with gateways `172.18.0.1/16` and
//! `fd00:18::1/64`, the uplink and `ext` with IPv6 addresses too, and
//! `ext` routing both subnets through the node (used by A only: B, B2 and
//! C never let it in unsolicited). B and B2 write each family's rules
//! (`iptables` and `ip6tables`, `table ip` and `table ip6`).
//!
//! In `c1`: an echo server on port 80 (published as 8080) and a sink on
//! 5201 (published as 5201). In `ext`: an echo server on 9000, for
//! connections out of the container.

use std::{
    io::{self, Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4},
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

use super::{
    Setup,
    load::{Mode, Server},
    netfilter::{self, Published},
};
use crate::{
    Netns, World,
    agent::Agent,
    world::{self, EXT_IP, EXT_IP6, NODE_UPLINK_IP, NODE_UPLINK_IP6},
};

pub const SUBNET: &str = "172.18.0.0/16";
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 1);
pub const CONTAINER: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);
pub const SUBNET6: &str = "fd00:18::/64";
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 1);
pub const CONTAINER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 2);
/// The bridge of A, B and B2 (weir names its own).
pub const BRIDGE: &str = "br-bench";
pub const ECHO_PORT: u16 = 80;
pub const PUBLISHED_ECHO: u16 = 8080;
pub const SINK_PORT: u16 = 5201;
pub const EXT_ECHO_PORT: u16 = 9000;
/// The first of the "other" ports published for the scale runs.
pub const OTHER_PORTS_FROM: u16 = 20000;

pub struct Bed {
    pub setup: Setup,
    // Servers and the agent go before the world they live in.
    pub echo: Server,
    pub sink: Server,
    pub ext_echo: Server,
    agent: Option<Agent>,
    /// Other ports published so far (the scale runs).
    others: u16,
    pub world: World,
}

impl Bed {
    pub fn new(setup: Setup) -> io::Result<Self> {
        Self::in_world(setup, World::new()?)
    }

    /// The bed in `world` (a fresh one, of any uplink).
    pub fn in_world(setup: Setup, mut world: World) -> io::Result<Self> {
        world.add_container("c1")?;
        for (k, v) in [
            ("net.ipv4.tcp_tw_reuse", "1"),
            ("net.ipv4.ip_local_port_range", "10000 65000"),
        ] {
            world.ext.sysctl(k, v)?;
            world.c("c1").sysctl(k, v)?;
        }
        world
            .ext
            .ip(&["route", "add", SUBNET, "via", &NODE_UPLINK_IP.to_string()])?;
        world.add_ipv6()?;
        world.ext.ip(&[
            "-6",
            "route",
            "add",
            SUBNET6,
            "via",
            &NODE_UPLINK_IP6.to_string(),
        ])?;
        let agent = if matches!(setup, Setup::Weir | Setup::WeirXdp) {
            let args: &[&str] = if setup == Setup::WeirXdp {
                &["--xdp", "native"]
            } else {
                &[]
            };
            let agent = Agent::start(&world, args);
            agent.ok(&[
                "network", "create", "bench", "--subnet", SUBNET, "--subnet", SUBNET6,
            ]);
            let ip = agent.attach(
                "bench",
                world.c("c1"),
                "c1",
                &[
                    "--ip",
                    &CONTAINER.to_string(),
                    "--ip6",
                    &CONTAINER6.to_string(),
                    "-p",
                    &format!("{PUBLISHED_ECHO}:{ECHO_PORT}"),
                    "-p",
                    &format!("{SINK_PORT}:{SINK_PORT}"),
                ],
            );
            assert_eq!(ip, CONTAINER);
            Some(agent)
        } else {
            plain_bridge(&world)?;
            None
        };
        let echo = Server::start(world.c("c1"), ECHO_PORT, Mode::Echo)?;
        let sink = Server::start(world.c("c1"), SINK_PORT, Mode::Sink)?;
        let ext_echo = Server::start(&world.ext, EXT_ECHO_PORT, Mode::Echo)?;
        let bed = Self {
            setup,
            echo,
            sink,
            ext_echo,
            agent,
            others: 0,
            world,
        };
        bed.write_rules()?;
        Ok(bed)
    }

    /// Where `ext` connects for the echo service.
    #[must_use]
    pub fn echo_target(&self) -> SocketAddrV4 {
        match self.setup {
            Setup::NoNat => SocketAddrV4::new(CONTAINER, ECHO_PORT),
            _ => SocketAddrV4::new(NODE_UPLINK_IP, PUBLISHED_ECHO),
        }
    }

    /// Where `ext` connects for the sink.
    #[must_use]
    pub fn sink_target(&self) -> SocketAddrV4 {
        match self.setup {
            Setup::NoNat => SocketAddrV4::new(CONTAINER, SINK_PORT),
            _ => SocketAddrV4::new(NODE_UPLINK_IP, SINK_PORT),
        }
    }

    /// Where the container connects, out through masquerade (or routed).
    #[must_use]
    pub fn out_target() -> SocketAddrV4 {
        SocketAddrV4::new(EXT_IP, EXT_ECHO_PORT)
    }

    /// Where `ext` connects for the echo service over IPv6.
    #[must_use]
    pub fn echo_target6(&self) -> SocketAddr {
        match self.setup {
            Setup::NoNat => (CONTAINER6, ECHO_PORT).into(),
            _ => (NODE_UPLINK_IP6, PUBLISHED_ECHO).into(),
        }
    }

    /// Where the container connects over IPv6, out through NAT66.
    #[must_use]
    pub fn out_target6() -> SocketAddr {
        (EXT_IP6, EXT_ECHO_PORT).into()
    }

    /// Where the agent (C's, X's) pinned its programs.
    #[must_use]
    pub fn pinned_programs(&self) -> Option<std::path::PathBuf> {
        self.agent.as_ref().map(|a| a.bpffs.join("progs"))
    }

    #[must_use]
    pub fn ext(&self) -> &Netns {
        &self.world.ext
    }

    #[must_use]
    pub fn container(&self) -> &Netns {
        self.world.c("c1")
    }

    #[must_use]
    pub fn node(&self) -> &Netns {
        &self.world.node
    }

    /// The ports B and B2 publish, in the order Docker would have
    /// published them: the other ports first, the measured ones last.
    /// Over IPv6 (`ip` the container's IPv6 address) the measured ones.
    fn published_to(&self, ip: IpAddr) -> Vec<Published> {
        let mut ports: Vec<Published> = if ip.is_ipv4() {
            (0..self.others)
                .map(|i| other_port(OTHER_PORTS_FROM + i))
                .collect()
        } else {
            Vec::new()
        };
        ports.push(Published {
            host_port: SINK_PORT,
            ip,
            port: SINK_PORT,
        });
        ports.push(Published {
            host_port: PUBLISHED_ECHO,
            ip,
            port: ECHO_PORT,
        });
        ports
    }

    fn published(&self) -> Vec<Published> {
        self.published_to(CONTAINER.into())
    }

    /// Replaces B's or B2's whole ruleset with the current ports (and,
    /// over IPv6, the measured ones).
    fn write_rules(&self) -> io::Result<()> {
        let ports6 = self.published_to(CONTAINER6.into());
        match self.setup {
            Setup::Iptables => {
                netfilter::feed(
                    self.node(),
                    "iptables-restore",
                    &[],
                    &netfilter::docker_ruleset(BRIDGE, SUBNET, &self.published()),
                )?;
                netfilter::feed(
                    self.node(),
                    "ip6tables-restore",
                    &[],
                    &netfilter::docker_ruleset(BRIDGE, SUBNET6, &ports6),
                )
            }
            Setup::Nftables => {
                let _ = self
                    .node()
                    .exec("nft", &["delete", "table", "ip", netfilter::NFT_TABLE]);
                let _ = self
                    .node()
                    .exec("nft", &["delete", "table", "ip6", netfilter::NFT_TABLE6]);
                netfilter::feed(
                    self.node(),
                    "nft",
                    &["-f", "-"],
                    &netfilter::nft_ruleset(BRIDGE, SUBNET, &self.published()),
                )?;
                netfilter::feed(
                    self.node(),
                    "nft",
                    &["-f", "-"],
                    &netfilter::nft_ruleset(BRIDGE, SUBNET6, &ports6),
                )
            }
            // weir, no NAT and the Docker worlds (`docker_bed`) write none.
            Setup::NoNat
            | Setup::Weir
            | Setup::WeirXdp
            | Setup::DockerOwn
            | Setup::DockerWeir
            | Setup::ClusterReference
            | Setup::ClusterWeir => Ok(()),
        }
    }

    /// Publishes more ports to `c1` until `total` other ports are
    /// published (B and B2 rewrite their rules, C asks the agent).
    pub fn grow_to(&mut self, total: u16) -> io::Result<()> {
        if total <= self.others {
            return Ok(());
        }
        if let Some(agent) = &self.agent {
            let spec = format!(
                "{a}-{b}:{a}-{b}",
                a = OTHER_PORTS_FROM + self.others,
                b = OTHER_PORTS_FROM + total - 1
            );
            api_publish(&agent.socket, "c1", &spec, true)?;
        }
        self.others = total;
        self.write_rules()
    }

    /// The time to publish one more port (and then takes it back, untimed):
    /// weir's API call, or the `iptables-restore --noflush`/`nft` run.
    pub fn publish_one_more(&self, port: u16) -> io::Result<Duration> {
        let p = other_port(port);
        let (program, args, add, delete): (_, &[&str], _, _) = match self.setup {
            Setup::Weir | Setup::WeirXdp => {
                let socket = &self.agent.as_ref().expect("C has an agent").socket;
                let spec = format!("{port}:{port}");
                let t = Instant::now();
                api_publish(socket, "c1", &spec, true)?;
                let took = t.elapsed();
                api_publish(socket, "c1", &spec, false)?;
                return Ok(took);
            }
            Setup::Iptables => (
                "iptables-restore",
                &["--noflush"],
                netfilter::docker_publish_one(BRIDGE, p),
                netfilter::docker_unpublish_one(BRIDGE, p),
            ),
            Setup::Nftables => (
                "nft",
                &["-f", "-"],
                netfilter::nft_add_elements(&[p]),
                netfilter::nft_delete_elements(&[p]),
            ),
            Setup::NoNat
            | Setup::DockerOwn
            | Setup::DockerWeir
            | Setup::ClusterReference
            | Setup::ClusterWeir => return Ok(Duration::ZERO),
        };
        let t = Instant::now();
        netfilter::feed(self.node(), program, args, &add)?;
        let took = t.elapsed();
        netfilter::feed(self.node(), program, args, &delete)?;
        Ok(took)
    }
}

fn other_port(port: u16) -> Published {
    Published {
        host_port: port,
        ip: CONTAINER.into(),
        port,
    }
}

/// A and the netfilter setups: the bridge, the container's veth on it, the
/// container's addresses and default routes (both families), all by hand.
fn plain_bridge(world: &World) -> io::Result<()> {
    let node = &world.node;
    let c1 = world.c("c1");
    node.ip(&["link", "add", BRIDGE, "type", "bridge"])?;
    node.ip(&["addr", "add", &format!("{GATEWAY}/16"), "dev", BRIDGE])?;
    node.ip(&["link", "set", BRIDGE, "up"])?;
    world::veth_into(node, "vethc1", c1)?;
    node.ip(&["link", "set", "vethc1", "master", BRIDGE, "up"])?;
    c1.ip(&["addr", "add", &format!("{CONTAINER}/16"), "dev", "eth0"])?;
    c1.ip(&["link", "set", "eth0", "up"])?;
    c1.ip(&["route", "add", "default", "via", &GATEWAY.to_string()])?;
    node.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{GATEWAY6}/64"),
        "dev",
        BRIDGE,
        "nodad",
    ])?;
    c1.ip(&[
        "-6",
        "addr",
        "add",
        &format!("{CONTAINER6}/64"),
        "dev",
        "eth0",
        "nodad",
    ])?;
    c1.ip(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        &GATEWAY6.to_string(),
    ])?;
    // What weir turns on for a dual-stack network, the others need too.
    node.sysctl("net.ipv6.conf.all.forwarding", "1")?;
    Ok(())
}

/// `POST` (or `DELETE`) `/v1/endpoints/NAME/ports` on the agent's socket,
/// a plain HTTP/1.1 exchange: what any API client of weir does.
fn api_publish(socket: &std::path::Path, name: &str, spec: &str, publish: bool) -> io::Result<()> {
    let body = format!("{{\"specs\":[\"{spec}\"]}}");
    let method = if publish { "POST" } else { "DELETE" };
    let mut s = UnixStream::connect(socket)?;
    write!(
        s,
        "{method} /v1/endpoints/{name}/ports HTTP/1.1\r\nHost: weir\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    let status = answer.split_whitespace().nth(1).unwrap_or("");
    if status.starts_with('2') {
        Ok(())
    } else {
        Err(io::Error::other(format!("{method} {spec}: {answer}")))
    }
}
