//! Netlink, through `rtnetlink` (never by shelling out): the few route verbs
//! the agent needs, each idempotent so that reconciling twice changes
//! nothing.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt as _;
use rtnetlink::{Handle, LinkBridge, LinkUnspec};

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("opening a netlink socket: {0}")]
    Connect(#[source] std::io::Error),
    #[error("{op} {target}: {source}")]
    Request {
        op: &'static str,
        target: String,
        #[source]
        source: rtnetlink::Error,
    },
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

    /// The index of link `name`, if it exists.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, NetlinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        match links.try_next().await {
            Ok(link) => Ok(link.map(|l| l.header.index)),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(source) => Err(request("get link", name, source)),
        }
    }

    /// Makes bridge `name` exist, up, with `gateway/prefix` on it.
    pub async fn ensure_bridge(
        &self,
        name: &str,
        gateway: Ipv4Addr,
        prefix: u8,
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
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
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
