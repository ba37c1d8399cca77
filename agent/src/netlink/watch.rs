//! The namespace's link, address and route changes as the kernel
//! announces them (rtnetlink's multicast groups, what `ip monitor` reads):
//! how the agent learns that a default route appeared or moved, an uplink
//! went or came back, or an address changed, without polling.

use futures::{StreamExt as _, channel::mpsc::UnboundedReceiver};
use rtnetlink::{
    MulticastGroup,
    packet_core::{NetlinkMessage, NetlinkPayload},
    packet_route::{
        RouteNetlinkMessage,
        route::{RouteHeader, RouteMessage, RouteType},
    },
    sys::SocketAddr,
};

use super::NetlinkError;

/// One change that can move an uplink or its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A link came, went or changed (its name when the kernel gave one).
    Link(Option<String>),
    /// An address was added to or removed from a link.
    Address,
    /// A default route of the main table was added or removed.
    DefaultRoute,
}

/// A subscription to the changes of the namespace the calling thread is in.
pub struct Watch {
    messages: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
}

impl Watch {
    /// Subscribes to links, both families' addresses and routes, and runs
    /// the socket on the current tokio runtime.
    pub fn open() -> Result<Self, NetlinkError> {
        let groups = [
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
            MulticastGroup::Ipv4Route,
            MulticastGroup::Ipv6Route,
        ];
        let (connection, _, messages) =
            rtnetlink::new_multicast_connection(&groups).map_err(NetlinkError::Connect)?;
        tokio::spawn(connection);
        Ok(Self { messages })
    }

    /// The next change of interest, skipping the rest (routes other than
    /// the default ones); `None` once the socket is closed.
    pub async fn next(&mut self) -> Option<Change> {
        loop {
            let (message, _) = self.messages.next().await?;
            if let Some(change) = classify(message) {
                return Some(change);
            }
        }
    }

    /// A change already queued, without waiting (`None`: none is).
    pub fn queued(&mut self) -> Option<Change> {
        while let Ok((message, _)) = self.messages.try_recv() {
            if let Some(change) = classify(message) {
                return Some(change);
            }
        }
        None
    }
}

/// The change an announcement tells of, if it is one of interest.
fn classify(message: NetlinkMessage<RouteNetlinkMessage>) -> Option<Change> {
    let NetlinkPayload::InnerMessage(message) = message.payload else {
        return None;
    };
    match &message {
        RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l) => {
            Some(Change::Link(super::if_name(l)))
        }
        RouteNetlinkMessage::NewAddress(_) | RouteNetlinkMessage::DelAddress(_) => {
            Some(Change::Address)
        }
        RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => {
            is_main_default(r).then_some(Change::DefaultRoute)
        }
        _ => None,
    }
}

/// Whether `route` is a default route (`/0`) of the main table that
/// forwards (not an `unreachable default`, which some hosts set for IPv6).
pub(super) fn is_main_default(route: &RouteMessage) -> bool {
    route.header.destination_prefix_length == 0
        && route.header.table == RouteHeader::RT_TABLE_MAIN
        && route.header.kind == RouteType::Unicast
}
