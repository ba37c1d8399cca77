//! Netlink, through `rtnetlink` (never by shelling out): the few route verbs
//! the agent needs, each idempotent so that reconciling twice changes
//! nothing.

pub mod ethtool;
pub mod routes;
pub mod watch;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::RawFd,
};

use futures::TryStreamExt as _;
use rtnetlink::{
    Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder,
    packet_route::{
        address::{AddressAttribute, AddressFlags},
        link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage},
        route::{RouteAddress, RouteAttribute},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("opening a netlink socket")]
    Connect(#[source] std::io::Error),
    #[error("no link named {name}")]
    NoSuchLink { name: String },
    #[error("{op} {target}")]
    Request {
        op: &'static str,
        target: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error(transparent)]
    Feature(std::io::Error),
}

/// A link's name (`IFLA_IFNAME`), when its message carries one.
pub(crate) fn if_name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

/// A netlink connection in the namespace of the thread that opened it.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens a connection and runs it on the current tokio runtime.
    pub fn connect() -> Result<Self, NetlinkError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// Link `name`, if it exists.
    async fn link_named(&self, name: &str) -> Result<Option<LinkMessage>, NetlinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match links.try_next().await {
            Ok(link) => Ok(link),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(source) => Err(request("get link", name, source)),
        }
    }

    /// The index of link `name`, if it exists.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        Ok(self.link_named(name).await?.map(|l| l.header.index))
    }

    /// Makes bridge `name` exist, up, with `gateway/prefix` on it and MAC
    /// `mac` (set, so that it never follows its ports' MACs).
    pub async fn ensure_bridge(
        &self,
        name: &str,
        gateway: Option<(Ipv4Addr, u8)>,
        mac: [u8; 6],
    ) -> Result<u32, NetlinkError> {
        let index = if let Some(index) = self.link_index(name).await? {
            index
        } else {
            self.handle
                .link()
                .add(LinkBridge::new(name).build())
                .execute()
                .await
                .map_err(|e| request("create bridge", name, e))?;
            self.link_index(name)
                .await?
                .ok_or_else(|| request("create bridge", name, rtnetlink::Error::RequestFailed))?
        };
        if let Some((gateway, prefix)) = gateway {
            match self
                .handle
                .address()
                .add(index, IpAddr::V4(gateway), prefix)
                .execute()
                .await
            {
                Err(e) if errno(&e) != Some(libc::EEXIST) => {
                    return Err(request("add address to", name, e));
                }
                _ => {}
            }
        }
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .address(mac.to_vec())
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| request("set up", name, e))?;
        Ok(index)
    }

    /// Deletes link `name`; `false` when there was none.
    pub async fn delete_link(&self, name: &str) -> Result<bool, NetlinkError> {
        let Some(index) = self.link_index(name).await? else {
            return Ok(false);
        };
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(request("delete link", name, e)),
        }
    }
}

impl Netlink {
    /// Makes a veth pair `host` <-> `peer`, both in this namespace, down.
    pub async fn create_veth(&self, host: &str, peer: &str) -> Result<(), NetlinkError> {
        self.handle
            .link()
            .add(LinkVeth::new(host, peer).down().build())
            .execute()
            .await
            .map_err(|e| request("create veth", host, e))
    }

    /// Moves link `name` into the network namespace open as `netns_fd`.
    pub async fn move_to_netns(&self, name: &str, netns_fd: RawFd) -> Result<(), NetlinkError> {
        let index = self.require_index(name).await?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .setns_by_fd(netns_fd)
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| request("move to namespace", name, e))
    }

    /// Enslaves `port` to bridge `bridge_index` and brings it up.
    pub async fn attach_to_bridge(
        &self,
        port: &str,
        bridge_index: u32,
    ) -> Result<u32, NetlinkError> {
        let index = self.require_index(port).await?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .controller(bridge_index)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| request("attach to bridge", port, e))?;
        Ok(index)
    }

    /// Inside a container namespace: renames `from` to `to`, sets its MAC
    /// and, with `v4` (address, prefix, gateway), `ip/prefix`, brings it
    /// and `lo` up, and routes everything via the gateway as
    /// `default_route` says (a second interface of weir's own has its
    /// subnet's route alone).
    pub async fn configure_container_side(
        &self,
        (from, to): (&str, &str),
        mac: [u8; 6],
        v4: Option<(Ipv4Addr, u8, Ipv4Addr)>,
        default_route: DefaultRoute,
    ) -> Result<(), NetlinkError> {
        let index = self.require_index(from).await?;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(index)
                    .name(to.to_owned())
                    .address(mac.to_vec())
                    .build(),
            )
            .execute()
            .await
            .map_err(|e| request("rename", from, e))?;
        if let Some((ip, prefix, _)) = v4 {
            self.handle
                .address()
                .add(index, IpAddr::V4(ip), prefix)
                .execute()
                .await
                .map_err(|e| request("add address to", to, e))?;
        }
        for link in [index, self.require_index("lo").await?] {
            self.handle
                .link()
                .set(LinkUnspec::new_with_index(link).up().build())
                .execute()
                .await
                .map_err(|e| request("set up", to, e))?;
        }
        let Some((_, _, gateway)) = v4 else {
            return Ok(());
        };
        self.add_default_route(index, gateway.into(), default_route)
            .await
    }

    /// A default route via `gateway` on link `index`, as `how` says.
    /// [`DefaultRoute::Behind`], where another attachment's is already
    /// there (made first): this one is added behind it, a metric past the
    /// kernel's default by the link's index, so the first interface
    /// carries the traffic, as with the reference CNI plugins (whose
    /// second default route the kernel keeps but does not use), and the
    /// next takes over when it goes. [`DefaultRoute::Only`]: an IPv4 one
    /// already there is an error (an IPv6 one is kept).
    async fn add_default_route(
        &self,
        index: u32,
        gateway: IpAddr,
        how: DefaultRoute,
    ) -> Result<(), NetlinkError> {
        let route = |metric: Option<u32>| match gateway {
            IpAddr::V4(gw) => {
                let r = RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(gw)
                    .output_interface(index);
                metric.map_or(r.clone(), |m| r.priority(m)).build()
            }
            IpAddr::V6(gw) => {
                let r = RouteMessageBuilder::<Ipv6Addr>::new()
                    .gateway(gw)
                    .output_interface(index);
                metric.map_or(r.clone(), |m| r.priority(m)).build()
            }
        };
        let what = if gateway.is_ipv4() {
            "add default route via"
        } else {
            "add IPv6 default route via"
        };
        // Behind the kernel's default metric for the family (IPv4 0,
        // IPv6 1024).
        let behind = if gateway.is_ipv4() {
            index
        } else {
            1024 + index
        };
        let metrics: &[Option<u32>] = match how {
            DefaultRoute::No => &[],
            DefaultRoute::Only => &[None],
            DefaultRoute::Behind => &[None, Some(behind)],
        };
        for &metric in metrics {
            match self.handle.route().add(route(metric)).execute().await {
                Ok(()) => return Ok(()),
                Err(e) if errno(&e) == Some(libc::EEXIST) => {
                    if how == DefaultRoute::Only && gateway.is_ipv4() {
                        return Err(request(what, &gateway.to_string(), e));
                    }
                }
                Err(e) => return Err(request(what, &gateway.to_string(), e)),
            }
        }
        Ok(())
    }

    /// Puts `ip/prefix` on link `index` (IPv6, without duplicate address
    /// detection: the address is weir's to give, and usable at once), if
    /// it is not there yet.
    pub async fn add_address6(
        &self,
        index: u32,
        ip: Ipv6Addr,
        prefix: u8,
        target: &str,
    ) -> Result<(), NetlinkError> {
        let mut req = self.handle.address().add(index, IpAddr::V6(ip), prefix);
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        match req.execute().await {
            Err(e) if errno(&e) != Some(libc::EEXIST) => Err(request("add address to", target, e)),
            _ => Ok(()),
        }
    }

    /// Inside a container namespace: its IPv6 address on `ifname` and a
    /// default route via `gateway` (the network's bridge).
    pub async fn configure_container_side6(
        &self,
        ifname: &str,
        (ip, prefix, gateway): (Ipv6Addr, u8, Ipv6Addr),
        default_route: DefaultRoute,
    ) -> Result<(), NetlinkError> {
        let index = self.require_index(ifname).await?;
        self.add_address6(index, ip, prefix, ifname).await?;
        self.add_default_route(index, gateway.into(), default_route)
            .await
    }

    /// The name of link `index`, if it exists.
    pub async fn link_name(&self, index: u32) -> Result<Option<String>, NetlinkError> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(link) => Ok(link.as_ref().and_then(if_name)),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(request("get link", &index.to_string(), e)),
        }
    }

    /// Every link of this namespace: (index, name).
    pub async fn links(&self) -> Result<Vec<(u32, String)>, NetlinkError> {
        let mut links = self.handle.link().get().execute();
        let mut out = Vec::new();
        while let Some(link) = links
            .try_next()
            .await
            .map_err(|e| request("list links", "", e))?
        {
            if let Some(name) = if_name(&link) {
                out.push((link.header.index, name));
            }
        }
        Ok(out)
    }

    /// Every IPv4 address of this namespace: (address, ifindex). For a
    /// point-to-point address the local one (`IFA_LOCAL`) is the node's.
    pub async fn ipv4_addresses(&self) -> Result<Vec<(Ipv4Addr, u32)>, NetlinkError> {
        Ok(self
            .addresses()
            .await?
            .into_iter()
            .filter_map(|(ip, index)| match ip {
                IpAddr::V4(ip) => Some((ip, index)),
                IpAddr::V6(_) => None,
            })
            .collect())
    }

    /// The node's IPv6 addresses (this namespace's), with their links.
    pub async fn ipv6_addresses(&self) -> Result<Vec<(Ipv6Addr, u32)>, NetlinkError> {
        Ok(self
            .addresses()
            .await?
            .into_iter()
            .filter_map(|(ip, index)| match ip {
                IpAddr::V6(ip) => Some((ip, index)),
                IpAddr::V4(_) => None,
            })
            .collect())
    }

    /// The destinations of this namespace's IPv4 routes, of every table
    /// (a VPN's may be in a table of its own), each a subnet (the default
    /// route is `0.0.0.0/0`).
    pub async fn ipv4_routes(&self) -> Result<Vec<crate::network::Subnet>, NetlinkError> {
        Ok(self
            .routes_of(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .await?
            .iter()
            .filter_map(|msg| {
                let dst = msg.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
                    _ => None,
                });
                crate::network::Subnet::containing(
                    dst.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    msg.header.destination_prefix_length,
                )
            })
            .collect())
    }

    /// Every address of this namespace, with its link.
    async fn addresses(&self) -> Result<Vec<(IpAddr, u32)>, NetlinkError> {
        let mut addrs = self.handle.address().get().execute();
        let mut out = Vec::new();
        while let Some(msg) = addrs
            .try_next()
            .await
            .map_err(|e| request("list addresses", "", e))?
        {
            let local = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = local.or(address) {
                out.push((ip, msg.header.index));
            }
        }
        Ok(out)
    }

    /// Whether link `name` is a veth (`false` when it does not exist).
    pub async fn is_veth(&self, name: &str) -> Result<bool, NetlinkError> {
        Ok(self.link_named(name).await?.is_some_and(|l| {
            l.attributes.iter().any(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth))),
                _ => false,
            })
        }))
    }

    /// The MAC of link `name`, if it exists.
    pub async fn link_mac(&self, name: &str) -> Result<Option<[u8; 6]>, NetlinkError> {
        Ok(self.link_named(name).await?.and_then(|l| {
            l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::Address(mac) => mac.try_into().ok(),
                _ => None,
            })
        }))
    }

    /// For the link of this namespace whose MAC is `mac` (a veth end), the
    /// ifindex of its peer (`IFLA_LINK`), in the peer's namespace.
    pub async fn peer_index_of_mac(&self, mac: [u8; 6]) -> Result<Option<u32>, NetlinkError> {
        let mut links = self.handle.link().get().execute();
        while let Some(link) = links
            .try_next()
            .await
            .map_err(|e| request("list links", "", e))?
        {
            let has_mac = link
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::Address(m) if m.as_slice() == mac));
            if has_mac {
                return Ok(link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Link(peer) => Some(*peer),
                    _ => None,
                }));
            }
        }
        Ok(None)
    }

    pub async fn require_index(&self, name: &str) -> Result<u32, NetlinkError> {
        self.link_index(name)
            .await?
            .ok_or_else(|| NetlinkError::NoSuchLink {
                name: name.to_owned(),
            })
    }
}

/// Whether an interface inside a container routes by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultRoute {
    /// A further interface of weir's own endpoints: its subnet's route
    /// alone.
    No,
    /// The container's one way out: a default route there already is an
    /// error.
    Only,
    /// A runtime's attachment: behind a default route there already (see
    /// `add_default_route`).
    Behind,
}

fn request(op: &'static str, target: &str, source: rtnetlink::Error) -> NetlinkError {
    NetlinkError::Request {
        op,
        target: target.to_owned(),
        source,
    }
}

/// The positive errno of a kernel refusal.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => Some(-msg.raw_code()),
        _ => None,
    }
}
