//! The routes weir makes to other nodes' pod CIDRs (host-gw, as flannel's
//! host-gw backend and Cilium's `autoDirectNodeRoutes` make them), marked
//! with weir's own route protocol so that weir only ever changes its own:
//! `ip route` shows them as `proto 87`.

use std::net::Ipv4Addr;

use futures::TryStreamExt as _;
use rtnetlink::{
    RouteMessageBuilder,
    packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteProtocol},
};

use super::{Netlink, NetlinkError, request};
use crate::network::Subnet;

/// The protocol number of the routes weir makes.
pub const RTPROT_WEIR: u8 = 87;

impl Netlink {
    /// The main table's IPv4 routes weir made: (destination, gateway).
    pub async fn weir_routes4(&self) -> Result<Vec<(Subnet, Ipv4Addr)>, NetlinkError> {
        let routes: Vec<_> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(|e| request("list routes", "", e))?;
        Ok(routes
            .iter()
            .filter(|r| {
                r.header.protocol == RouteProtocol::Other(RTPROT_WEIR)
                    && r.header.table == RouteHeader::RT_TABLE_MAIN
            })
            .filter_map(|r| {
                let (mut dst, mut via) = (None, None);
                for a in &r.attributes {
                    match a {
                        RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = Some(*ip),
                        RouteAttribute::Gateway(RouteAddress::Inet(ip)) => via = Some(*ip),
                        _ => {}
                    }
                }
                Some((
                    Subnet::containing(dst?, r.header.destination_prefix_length)?,
                    via?,
                ))
            })
            .collect())
    }

    /// Routes `dest` via `gateway`, as weir's (replacing a route of weir's
    /// to `dest`; the kernel refuses to replace another's).
    pub async fn add_weir_route4(
        &self,
        dest: Subnet,
        gateway: Ipv4Addr,
    ) -> Result<(), NetlinkError> {
        let route = Self::weir_route(dest, gateway);
        let done = self.handle.route().add(route).replace().execute().await;
        done.map_err(|e| request("add route", &format!("{dest} via {gateway}"), e))
    }

    /// Removes weir's route to `dest` via `gateway`.
    pub async fn del_weir_route4(
        &self,
        dest: Subnet,
        gateway: Ipv4Addr,
    ) -> Result<(), NetlinkError> {
        let route = Self::weir_route(dest, gateway);
        let done = self.handle.route().del(route).execute().await;
        done.map_err(|e| request("delete route", &format!("{dest} via {gateway}"), e))
    }

    fn weir_route(dest: Subnet, gateway: Ipv4Addr) -> rtnetlink::packet_route::route::RouteMessage {
        RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dest.network(), dest.prefix())
            .gateway(gateway)
            .protocol(RouteProtocol::Other(RTPROT_WEIR))
            .build()
    }
}
