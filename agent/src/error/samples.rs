//! A value of every variant of every error type of this crate, for
//! `tests.rs`: a new variant without one here fails its test.

use std::{io, net::Ipv4Addr, path::PathBuf};

use hyper::StatusCode;

use super::AgentError;
use crate::{
    api::{client::ClientError, http::TransportError},
    datapath::DatapathError,
    docker::{FollowError, api::DockerError, picture::Skip},
    kube::{ApiError, NodesError, file::NodeListError},
    mounts::MountError,
    netavark::NetavarkError,
    netlink::NetlinkError,
    network::{
        CidrError, Ipam6Error, IpamError, NetworkError, PoolError, Subnet, Subnet6, Subnet6Error,
        SubnetError,
    },
    publish::{AllowError, Proto, ReserveError, SpecError},
    state::StateError,
};

/// One error value, with its type's and its variant's names.
pub(super) struct Sample {
    pub ty: &'static str,
    pub variant: String,
    pub error: Box<dyn std::error::Error + 'static>,
}

fn sample<E: std::error::Error + 'static>(error: E) -> Sample {
    let ty = std::any::type_name::<E>().rsplit("::").next().unwrap_or("");
    // Derived `Debug` starts with the variant's name (a struct's own).
    let debug = format!("{error:?}");
    let variant = debug
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("")
        .to_owned();
    Sample {
        ty,
        variant,
        error: Box::new(error),
    }
}

fn io() -> io::Error {
    io::Error::from_raw_os_error(libc::EPERM)
}

fn json() -> serde_json::Error {
    serde_json::from_str::<u8>("x").unwrap_err()
}

/// A real `hyper::Error`: a request on a connection closed at once.
fn hyper() -> hyper::Error {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (ours, theirs) = tokio::io::duplex(64);
        drop(theirs);
        let io = hyper_util::rt::TokioIo::new(ours);
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        send.send_request(hyper::Request::new(Empty::<Bytes>::new()))
            .await
            .unwrap_err()
    })
}

/// The aya error of a map the kernel refused to make.
pub(super) fn map_refused() -> aya::EbpfError {
    aya::EbpfError::MapError(aya::maps::MapError::CreateError {
        name: "CT6".into(),
        io_error: io(),
    })
}

fn subnet() -> Subnet {
    "10.1.0.0/16".parse().unwrap()
}

fn subnet6() -> Subnet6 {
    "fd00:1::/64".parse().unwrap()
}

fn path() -> PathBuf {
    "/var/lib/weir/state.json".into()
}

fn s(text: &str) -> String {
    text.to_owned()
}

/// Every variant of the agent's own errors.
pub(super) fn all() -> Vec<Sample> {
    let mut out = agent();
    out.extend(lower());
    out.extend(doors());
    out
}

#[expect(clippy::too_many_lines, reason = "a sample a variant, nothing else")]
fn agent() -> Vec<Sample> {
    let ip = Ipv4Addr::new(10, 1, 0, 2);
    let ip6 = "fd00:1::2".parse().unwrap();
    let ep = || s("web");
    let net = || s("front");
    vec![
        sample(AgentError::Network(NetworkError::NoFreeId)),
        sample(AgentError::Ipam(IpamError::Taken { ip })),
        sample(AgentError::NetnsMissing { path: path() }),
        sample(AgentError::NotANetns { path: path() }),
        sample(AgentError::IfnameExists {
            path: path(),
            ifname: s("eth0"),
        }),
        sample(AgentError::InvalidIfname { name: s("a/b") }),
        sample(AgentError::InvalidMac { mac: s("zz") }),
        sample(AgentError::InvalidEndpointName { name: s("-") }),
        sample(AgentError::StateLost {
            path: path(),
            links: s("weir0"),
            last_good: None,
        }),
        sample(AgentError::StateBroken {
            error: StateError::Parse {
                path: path(),
                error: json(),
            },
            last_good: Some(path()),
        }),
        sample(AgentError::Trace(aya_log::Error::MapNotFound)),
        sample(AgentError::NoLastGood { path: path() }),
        sample(AgentError::AllowEmpty { port: s("8080") }),
        sample(AgentError::AllowNotFound { port: s("8080") }),
        sample(AgentError::AlreadyConnected {
            endpoint: ep(),
            network: net(),
        }),
        sample(AgentError::NotConnected {
            endpoint: ep(),
            network: net(),
        }),
        sample(AgentError::FirstNetwork {
            endpoint: ep(),
            network: net(),
        }),
        sample(AgentError::NotFirstInterface {
            endpoint: s("web.back"),
            first: ep(),
        }),
        sample(AgentError::EndpointExists { name: ep() }),
        sample(AgentError::EndpointNotFound { name: ep() }),
        sample(AgentError::AddressInUse { ip, endpoint: ep() }),
        sample(AgentError::Address6InUse {
            ip: ip6,
            endpoint: ep(),
        }),
        sample(AgentError::PoolsFull {
            pools: s("base=10.0.0.0/8,size=24"),
        }),
        sample(AgentError::NoIpv4 { network: net(), ip }),
        sample(AgentError::NoIpv6 {
            network: net(),
            ip6,
        }),
        sample(AgentError::NetworkInUse {
            name: net(),
            endpoints: vec![ep()],
        }),
        sample(AgentError::Spec(SpecError {
            spec: s("x"),
            reason: s("not a port"),
        })),
        sample(AgentError::PortAllocated {
            bind: s("0.0.0.0:8080"),
            endpoint: ep(),
        }),
        sample(AgentError::NoFreePort {
            spec: s("8000-8001:80"),
            range: s("8000-8001"),
            ip: ip.into(),
        }),
        sample(AgentError::PublishNoFamily {
            spec: s("[::]:80:80"),
            endpoint: ep(),
            network: net(),
            family: "IPv6",
        }),
        sample(AgentError::NotPublished {
            endpoint: ep(),
            spec: s("80"),
        }),
        sample(AgentError::Reserve(ReserveError::NotLocal {
            ip: ip.into(),
        })),
        sample(AgentError::SnatPortsOverlap {
            range: s("32768-60999"),
            local: s("32768-60999"),
        }),
        sample(AgentError::AlreadyRunning { socket: path() }),
        sample(AgentError::RunningDuringCleanup { socket: path() }),
        sample(AgentError::EngineOwned {
            what: s("network `bridge`"),
            engine: "Docker",
            hint: "use docker",
        }),
        sample(AgentError::CniAttached {
            container_id: s("c1"),
            ifname: s("eth0"),
            endpoint: ep(),
        }),
        sample(AgentError::CniUnknown {
            container_id: s("c1"),
            ifname: s("eth0"),
        }),
        sample(AgentError::CniDiffers {
            endpoint: ep(),
            what: s("its MAC"),
        }),
        sample(AgentError::CniPort { what: s("port 0") }),
        sample(AgentError::NetworkDiffers {
            name: net(),
            what: s("another subnet"),
        }),
        sample(AgentError::SubnetNotOnNetwork {
            network: net(),
            subnet: s("10.2.0.0/24"),
        }),
        sample(AgentError::NameTaken {
            name: net(),
            owner: "Docker",
        }),
        sample(AgentError::BridgeMissing {
            bridge: s("br0"),
            network: net(),
        }),
        sample(AgentError::NoSuchInterface {
            netns: path(),
            mac: s("02:42:0a:01:00:02"),
        }),
        sample(AgentError::Netlink(NetlinkError::Connect(io()))),
        sample(AgentError::Datapath(DatapathError::Load(map_refused()))),
        sample(AgentError::Mount(MountError::NoCgroup2 { cause: io() })),
        sample(AgentError::State(StateError::Read {
            path: path(),
            error: io(),
        })),
        sample(AgentError::Io {
            what: s("reading /etc/resolv.conf"),
            source: io(),
        }),
    ]
}

/// The lower layers: datapath, mounts, netlink, networks, ports, state.
#[expect(clippy::too_many_lines, reason = "a sample a variant, nothing else")]
fn lower() -> Vec<Sample> {
    let ip = Ipv4Addr::new(10, 1, 0, 2);
    let ip6 = "fd00:1::2".parse().unwrap();
    let program = "tc_from_uplink";
    let prog = || aya::programs::ProgramError::NotLoaded;
    let input = || s("10.1.0.1/16");
    vec![
        sample(DatapathError::Load(map_refused())),
        sample(DatapathError::MissingProgram(program)),
        sample(DatapathError::MissingMap("CT4")),
        sample(DatapathError::Program {
            program,
            source: prog(),
        }),
        sample(DatapathError::Attach {
            program,
            interface: s("eth0"),
            source: prog(),
        }),
        sample(DatapathError::Pin {
            name: s(program),
            path: s("/sys/fs/bpf/weir/progs"),
            source: aya::pin::PinError::NoFd { name: s(program) },
        }),
        sample(DatapathError::PinFile {
            path: s("/sys/fs/bpf/weir/maps"),
            source: io(),
        }),
        sample(DatapathError::Walk {
            map: "CT4",
            source: io(),
        }),
        sample(DatapathError::Take {
            map: "CT4",
            source: io(),
        }),
        sample(DatapathError::Layout {
            map: "CT4",
            source: io(),
        }),
        sample(DatapathError::Link {
            name: s(program),
            source: io(),
        }),
        sample(DatapathError::Cgroup {
            path: s("/sys/fs/cgroup"),
            source: io(),
        }),
        sample(DatapathError::Cpus(io())),
        sample(DatapathError::NetnsCookie(io())),
        sample(DatapathError::Map {
            map: "CT4",
            source: aya::maps::MapError::KeyNotFound,
        }),
        sample(MountError::NoHostBpffs { path: path() }),
        sample(MountError::NotBpffs { path: path() }),
        sample(MountError::NoBpfDir {
            mount: "/sys/fs/bpf".into(),
        }),
        sample(MountError::MountBpffs {
            mount: "/sys/fs/bpf".into(),
            cause: io(),
        }),
        sample(MountError::ReadOnly {
            mount: "/sys/fs/bpf".into(),
            path: "/sys/fs/bpf/weir".into(),
        }),
        sample(MountError::NotCgroup2 { path: path() }),
        sample(MountError::NoCgroup2 { cause: io() }),
        sample(MountError::Io {
            what: s("opening /sys/fs/bpf"),
            source: io(),
        }),
        sample(NetlinkError::Connect(io())),
        sample(NetlinkError::NoSuchLink { name: s("eth9") }),
        sample(NetlinkError::Request {
            op: "create bridge",
            target: s("weir0"),
            source: rtnetlink::Error::RequestFailed,
        }),
        sample(NetlinkError::Feature(io())),
        sample(CidrError::V4(SubnetError::Syntax { input: input() })),
        sample(CidrError::V6(Subnet6Error::Syntax { input: input() })),
        sample(IpamError::TooSmall { subnet: subnet() }),
        sample(IpamError::GatewayOutside {
            gateway: ip,
            subnet: subnet(),
        }),
        sample(IpamError::GatewayReserved {
            gateway: ip,
            subnet: subnet(),
        }),
        sample(IpamError::Outside {
            ip,
            subnet: subnet(),
        }),
        sample(IpamError::Reserved {
            ip,
            subnet: subnet(),
        }),
        sample(IpamError::Taken { ip }),
        sample(IpamError::Exhausted { subnet: subnet() }),
        sample(PoolError {
            input: s("base=x"),
            reason: s("not a CIDR"),
        }),
        sample(NetworkError::InvalidName { name: s("-") }),
        sample(NetworkError::Exists { name: s("front") }),
        sample(NetworkError::Overlap {
            subnet: subnet(),
            other: subnet(),
            network: s("front"),
        }),
        sample(NetworkError::SnatWithoutMasquerade { name: s("front") }),
        sample(NetworkError::NotFound { name: s("front") }),
        sample(NetworkError::NoFreeId),
        sample(NetworkError::Overlap6 {
            subnet: subnet6(),
            other: subnet6(),
            network: s("front"),
        }),
        sample(NetworkError::Addresses(s("two IPv4 subnets"))),
        sample(NetworkError::Ipam(IpamError::Taken { ip })),
        sample(NetworkError::Ipam6(Ipam6Error::Taken { ip: ip6 })),
        sample(SubnetError::Syntax { input: input() }),
        sample(SubnetError::Prefix { input: input() }),
        sample(SubnetError::HostBits {
            input: input(),
            network: subnet(),
        }),
        sample(Subnet6Error::Syntax { input: input() }),
        sample(Subnet6Error::Prefix {
            input: input(),
            max: 120,
        }),
        sample(Subnet6Error::HostBits {
            input: input(),
            network: subnet6(),
        }),
        sample(Subnet6Error::Special { input: input() }),
        sample(Ipam6Error::GatewayOutside {
            gateway: ip6,
            subnet: subnet6(),
        }),
        sample(Ipam6Error::Outside {
            ip: ip6,
            subnet: subnet6(),
        }),
        sample(Ipam6Error::Reserved {
            ip: ip6,
            subnet: subnet6(),
        }),
        sample(Ipam6Error::Taken { ip: ip6 }),
        sample(AllowError {
            input: s("x"),
            reason: s("not a port"),
        }),
        sample(ReserveError::InUse {
            ip: ip.into(),
            port: 80,
            proto: Proto::Tcp,
        }),
        sample(ReserveError::NotLocal { ip: ip.into() }),
        sample(ReserveError::Unsupported { proto: Proto::Sctp }),
        sample(ReserveError::Io {
            ip: ip.into(),
            port: 80,
            proto: Proto::Udp,
            source: io(),
        }),
        sample(SpecError {
            spec: s("x"),
            reason: s("not a port"),
        }),
        sample(StateError::Read {
            path: path(),
            error: io(),
        }),
        sample(StateError::Parse {
            path: path(),
            error: json(),
        }),
        sample(StateError::Write {
            path: path(),
            error: io(),
        }),
    ]
}

/// The doors and clients: the API's client, Docker, Kubernetes, netavark.
fn doors() -> Vec<Sample> {
    let docker = || DockerError::Refused {
        path: s("/networks"),
        status: StatusCode::NOT_FOUND,
        message: s("no such network"),
    };
    let agent = || ClientError::Refused {
        status: StatusCode::CONFLICT,
        message: s("endpoint `web` already exists"),
    };
    vec![
        sample(ClientError::NotRunning {
            socket: path(),
            cause: io(),
        }),
        sample(agent()),
        sample(ClientError::Http(hyper())),
        sample(ClientError::Decode(json())),
        sample(ClientError::Output(io())),
        sample(TransportError::Connect(io())),
        sample(TransportError::Http(hyper())),
        sample(DockerError::Unreachable {
            socket: path(),
            cause: io(),
        }),
        sample(docker()),
        sample(DockerError::Http(hyper())),
        sample(DockerError::Decode {
            path: s("/events"),
            source: json(),
        }),
        sample(FollowError::Docker(docker())),
        sample(FollowError::Agent(AgentError::EndpointNotFound {
            name: s("web"),
        })),
        sample(FollowError::StreamEnded),
        sample(Skip::Driver(s("macvlan"))),
        sample(Skip::NoSubnet),
        sample(Skip::Subnet(s("x"), s("invalid subnet `x`"))),
        sample(NodesError::Read {
            path: path(),
            source: io(),
        }),
        sample(NodesError::Parse {
            path: path(),
            source: NodeListError::Json(json()),
        }),
        sample(NodeListError::Json(json())),
        sample(NodeListError::Nameless { index: 1 }),
        sample(ApiError::Kubeconfig {
            path: path(),
            source: kube::config::KubeconfigError::CurrentContextNotSet,
        }),
        sample(ApiError::Client(
            kube::Error::LinesCodecMaxLineLengthExceeded,
        )),
        sample(NetavarkError::Usage),
        sample(NetavarkError::UnknownCommand { command: s("frob") }),
        sample(NetavarkError::NoNetns {
            command: s("setup"),
        }),
        sample(NetavarkError::Stdin(io())),
        sample(NetavarkError::Runtime(io())),
        sample(NetavarkError::Json {
            command: s("setup"),
            cause: json(),
        }),
        sample(NetavarkError::Unsupported {
            network: s("podman"),
            what: s("macvlan"),
        }),
        sample(NetavarkError::Port {
            mapping: s("8080:80"),
            why: s("past port 65535"),
        }),
        sample(NetavarkError::StaticIps {
            network: s("podman"),
            ip: Ipv4Addr::new(10, 1, 0, 3).into(),
        }),
        sample(NetavarkError::Unreachable {
            socket: path(),
            cause: io(),
        }),
        sample(NetavarkError::NoNetwork {
            network: s("podman"),
        }),
        sample(NetavarkError::Refused {
            message: s("network `podman` exists with another subnet"),
        }),
        sample(NetavarkError::Agent(ClientError::Http(hyper()))),
        sample(NetavarkError::Encode(json())),
    ]
}
