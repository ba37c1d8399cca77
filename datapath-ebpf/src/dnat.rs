//! Published ports: which packets and sockets `PUBLISH4` translates.

use weir_common::publish::{PublishKey, PublishTarget};

use crate::maps::{HOST_ADDRS4, PUBLISH4};

/// The publication a packet or socket to `daddr:dport` reaches: an exact
/// binding first, then a wildcard one if `daddr` is an address of the node
/// (Docker's `--dst-type LOCAL`). `loopback_ok` is for the socket hooks
/// only: a packet to 127/8 never reaches a publication, so a port bound
/// to 127.0.0.1 stays unreachable from other hosts whatever their routes.
/// Returns the key that matched (the publication's counters are under it)
/// and its target.
#[inline(always)]
pub fn lookup(
    daddr: [u8; 4],
    dport: [u8; 2],
    proto: u8,
    loopback_ok: bool,
) -> Option<(PublishKey, PublishTarget)> {
    let loopback = daddr[0] == 127;
    if loopback && !loopback_ok {
        return None;
    }
    let mut key = PublishKey {
        host_ip: daddr,
        port: dport,
        proto,
        pad: 0,
    };
    if let Some(t) = PUBLISH4.get_ptr(key) {
        // SAFETY: a pointer into a map value, valid for this program run.
        return Some((key, unsafe { *t }));
    }
    if !loopback && HOST_ADDRS4.get_ptr(daddr).is_none() {
        return None;
    }
    key.host_ip = [0; 4];
    // SAFETY: as above.
    PUBLISH4.get_ptr(key).map(|t| (key, unsafe { *t }))
}
