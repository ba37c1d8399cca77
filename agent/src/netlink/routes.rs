//! The routes weir makes to other nodes' pod CIDRs (host-gw, as flannel's
//! host-gw backend and Cilium's `autoDirectNodeRoutes` make them), of both
//! families, marked with weir's own route protocol so that weir only ever
//! changes its own: `ip route` and `ip -6 route` show them as `proto 87`.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use futures::TryStreamExt as _;
use rtnetlink::{
    RouteMessageBuilder,
    packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol},
};

use super::{Netlink, NetlinkError, request};
use crate::network::{Cidr, Subnet, Subnet6};

/// The protocol number of the routes weir makes.
pub const RTPROT_WEIR: u8 = 87;

/// One of weir's routes: a range via a gateway of its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeirRoute {
    V4(Subnet, Ipv4Addr),
    V6(Subnet6, Ipv6Addr),
}

impl WeirRoute {
    /// `dest` via `gateway`, when they are of one family.
    #[must_use]
    pub fn new(dest: Cidr, gateway: IpAddr) -> Option<Self> {
        match (dest, gateway) {
            (Cidr::V4(d), IpAddr::V4(g)) => Some(Self::V4(d, g)),
            (Cidr::V6(d), IpAddr::V6(g)) => Some(Self::V6(d, g)),
            _ => None,
        }
    }

    fn message(self) -> RouteMessage {
        let weir = RouteProtocol::Other(RTPROT_WEIR);
        match self {
            Self::V4(dest, gateway) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(dest.network(), dest.prefix())
                .gateway(gateway)
                .protocol(weir)
                .build(),
            Self::V6(dest, gateway) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(dest.network(), dest.prefix())
                .gateway(gateway)
                .protocol(weir)
                .build(),
        }
    }
}

impl fmt::Display for WeirRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(dest, gateway) => write!(f, "{dest} via {gateway}"),
            Self::V6(dest, gateway) => write!(f, "{dest} via {gateway}"),
        }
    }
}

impl Netlink {
    /// Every route of one family (`family`: an empty message of it), of
    /// every table.
    pub(super) async fn routes_of(
        &self,
        family: RouteMessage,
    ) -> Result<Vec<RouteMessage>, NetlinkError> {
        self.handle
            .route()
            .get(family)
            .execute()
            .try_collect()
            .await
            .map_err(|e| request("list routes", "", e))
    }

    /// Both families' empty route messages, IPv4's first.
    fn families() -> [RouteMessage; 2] {
        [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ]
    }

    /// The devices of the main table's default routes: the IPv4 one's
    /// first, then the IPv6 one's when it is another (of several default
    /// routes of a family, the one with the lowest metric, which the
    /// kernel uses). A route with no single device (multipath) is skipped.
    pub async fn default_route_devices(&self) -> Result<Vec<String>, NetlinkError> {
        let mut out: Vec<String> = Vec::new();
        for family in Self::families() {
            let best = self
                .routes_of(family)
                .await?
                .iter()
                .filter(|r| super::watch::is_main_default(r))
                .filter_map(|r| {
                    let (mut oif, mut metric) = (None, 0);
                    for a in &r.attributes {
                        match a {
                            RouteAttribute::Oif(i) => oif = Some(*i),
                            RouteAttribute::Priority(p) => metric = *p,
                            _ => {}
                        }
                    }
                    Some((metric, oif?))
                })
                .min();
            if let Some((_, index)) = best
                && let Some(name) = self.link_name(index).await?
                && !out.contains(&name)
            {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// The main table's routes weir made, of both families.
    pub async fn weir_routes(&self) -> Result<Vec<WeirRoute>, NetlinkError> {
        let mut all = Vec::new();
        for family in Self::families() {
            all.extend(self.routes_of(family).await?.iter().filter_map(weir_route));
        }
        Ok(all)
    }

    /// Adds `route`, as weir's (replacing a route of weir's to its
    /// destination; the kernel refuses to replace another's).
    pub async fn add_weir_route(&self, route: WeirRoute) -> Result<(), NetlinkError> {
        let done = self
            .handle
            .route()
            .add(route.message())
            .replace()
            .execute()
            .await;
        done.map_err(|e| request("add route", &route.to_string(), e))
    }

    /// Removes weir's `route`.
    pub async fn del_weir_route(&self, route: WeirRoute) -> Result<(), NetlinkError> {
        let done = self.handle.route().del(route.message()).execute().await;
        done.map_err(|e| request("delete route", &route.to_string(), e))
    }
}

/// A route of the main table that weir made, read back.
fn weir_route(r: &RouteMessage) -> Option<WeirRoute> {
    if r.header.protocol != RouteProtocol::Other(RTPROT_WEIR)
        || r.header.table != RouteHeader::RT_TABLE_MAIN
    {
        return None;
    }
    let (mut dst, mut via) = (None, None);
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = Some(IpAddr::V4(*ip)),
            RouteAttribute::Destination(RouteAddress::Inet6(ip)) => dst = Some(IpAddr::V6(*ip)),
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => via = Some(IpAddr::V4(*ip)),
            RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => via = Some(IpAddr::V6(*ip)),
            _ => {}
        }
    }
    WeirRoute::new(
        Cidr::containing(dst?, r.header.destination_prefix_length)?,
        via?,
    )
}
