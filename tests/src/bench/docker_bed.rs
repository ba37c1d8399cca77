//! The comparison Docker users make: the same container under real dockerd
//! with its defaults (its iptables rules and `docker-proxy`, written by
//! Docker itself), D, against dockerd with `iptables=false` and
//! `weir agent --docker`, E. Each is a world of its own (the test bed's
//! `node` and `ext`), the container `c1` runs `sleep` on Docker's default
//! network with `-p 8080:80`, and the bench's own echo server runs inside
//! its network namespace (named with `ip netns attach`), as in A to C.

use std::{io, net::SocketAddrV4, time::Duration};

use super::{
    Setup,
    bed::{ECHO_PORT, EXT_ECHO_PORT, PUBLISHED_ECHO},
    load::{Mode, Server},
};
use crate::{
    Netns, World,
    agent::Agent,
    docker::{self, Docker, IMAGE, Rules},
    world::NODE_UPLINK_IP,
};

/// Docker's default network in these worlds.
const BIP: &str = "172.31.240.1/24";

pub struct DockerBed {
    pub setup: Setup,
    // Servers, the namespace name and the agent go before the engine, the
    // engine before the world it runs in.
    pub echo: Server,
    pub ext_echo: Server,
    container: Netns,
    _agent: Option<Agent>,
    docker: Docker,
    pub world: World,
}

impl DockerBed {
    pub fn new(setup: Setup) -> io::Result<Self> {
        let world = World::new()?;
        for (k, v) in [
            ("net.ipv4.tcp_tw_reuse", "1"),
            ("net.ipv4.ip_local_port_range", "10000 65000"),
        ] {
            world.ext.sysctl(k, v)?;
        }
        let rules = match setup {
            Setup::DockerOwn => Rules::Docker,
            _ => Rules::Off,
        };
        let docker = Docker::start_with(&world.node, world.stem(), BIP, rules);
        let agent = (setup == Setup::DockerWeir).then(|| {
            let socket = format!("unix://{}", docker.socket.display());
            Agent::start(&world, &["--docker", &socket, "--no-default-network"])
        });
        docker.ok(&[
            "run",
            "-d",
            "--name",
            "c1",
            "-p",
            &format!("{PUBLISHED_ECHO}:{ECHO_PORT}"),
            "--sysctl",
            "net.ipv4.ip_local_port_range=10000 65000",
            "--sysctl",
            "net.ipv4.tcp_tw_reuse=1",
            IMAGE,
            "sleep",
            "1000000",
        ]);
        if let Some(agent) = &agent {
            let _ = docker::ports_of(agent, "c1", 1);
        }
        let container = Netns::attach(&format!("{}-c1", world.stem()), docker.pid("c1"))?;
        let echo = Server::start(&container, ECHO_PORT, Mode::Echo)?;
        let ext_echo = Server::start(&world.ext, EXT_ECHO_PORT, Mode::Echo)?;
        std::thread::sleep(Duration::from_millis(100));
        Ok(Self {
            setup,
            echo,
            ext_echo,
            container,
            _agent: agent,
            docker,
            world,
        })
    }

    #[must_use]
    pub fn echo_target() -> SocketAddrV4 {
        SocketAddrV4::new(NODE_UPLINK_IP, PUBLISHED_ECHO)
    }

    #[must_use]
    pub fn ext(&self) -> &Netns {
        &self.world.ext
    }

    #[must_use]
    pub fn container(&self) -> &Netns {
        &self.container
    }

    /// Who did Docker's job, for the report.
    #[must_use]
    pub fn engine_version(&self) -> String {
        self.docker
            .ok(&["version", "--format", "{{.Server.Version}}"])
    }
}
