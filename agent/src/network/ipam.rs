//! Address management for one network: the gateway and the addresses handed
//! to endpoints.

use std::{collections::BTreeSet, net::Ipv4Addr};

use serde::{Deserialize, Serialize};

use super::Subnet;

/// The longest prefix that still holds a gateway and one container
/// (network, gateway, container, broadcast).
pub const MAX_PREFIX: u8 = 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("subnet {subnet} is too small: a network needs a prefix of /{MAX_PREFIX} or shorter")]
    TooSmall { subnet: Subnet },
    #[error("gateway {gateway} is not inside subnet {subnet}")]
    GatewayOutside { gateway: Ipv4Addr, subnet: Subnet },
    #[error("gateway {gateway} is the network or broadcast address of {subnet}")]
    GatewayReserved { gateway: Ipv4Addr, subnet: Subnet },
    #[error("address {ip} is not inside subnet {subnet}")]
    Outside { ip: Ipv4Addr, subnet: Subnet },
    #[error("address {ip} is reserved in {subnet} (network, broadcast or gateway)")]
    Reserved { ip: Ipv4Addr, subnet: Subnet },
    #[error("address {ip} is already in use")]
    Taken { ip: Ipv4Addr },
    #[error("no free address left in {subnet}")]
    Exhausted { subnet: Subnet },
}

/// The addresses of one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam {
    subnet: Subnet,
    gateway: Ipv4Addr,
    used: BTreeSet<Ipv4Addr>,
    /// The last address [`Ipam::allocate_next`] gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<Ipv4Addr>,
}

impl Ipam {
    /// IPAM for `subnet` with `gateway` (default: the first host address).
    pub fn new(subnet: Subnet, gateway: Option<Ipv4Addr>) -> Result<Self, IpamError> {
        if subnet.prefix() > MAX_PREFIX {
            return Err(IpamError::TooSmall { subnet });
        }
        let gateway = match gateway {
            Some(gw) if !subnet.contains(gw) => {
                return Err(IpamError::GatewayOutside {
                    gateway: gw,
                    subnet,
                });
            }
            Some(gw) if gw == subnet.network() || gw == subnet.broadcast() => {
                return Err(IpamError::GatewayReserved {
                    gateway: gw,
                    subnet,
                });
            }
            Some(gw) => gw,
            None => subnet
                .hosts()
                .next()
                .ok_or(IpamError::TooSmall { subnet })?,
        };
        Ok(Self {
            subnet,
            gateway,
            used: BTreeSet::new(),
            last: None,
        })
    }

    #[must_use]
    pub fn subnet(&self) -> Subnet {
        self.subnet
    }

    #[must_use]
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// Addresses handed out, in order.
    pub fn used(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.used.iter().copied()
    }

    /// Takes `wanted`, or the lowest free host address.
    pub fn allocate(&mut self, wanted: Option<Ipv4Addr>) -> Result<Ipv4Addr, IpamError> {
        let ip = match wanted {
            Some(ip) => {
                self.check_free(ip)?;
                ip
            }
            None => self
                .subnet
                .hosts()
                .find(|ip| *ip != self.gateway && !self.used.contains(ip))
                .ok_or(IpamError::Exhausted {
                    subnet: self.subnet,
                })?,
        };
        self.used.insert(ip);
        Ok(ip)
    }

    /// Takes `wanted`, or the first free host address after the last one
    /// given this way, wrapping around (host-local's order): an address
    /// freed is not given again before the others have been.
    pub fn allocate_next(&mut self, wanted: Option<Ipv4Addr>) -> Result<Ipv4Addr, IpamError> {
        let ip = if let Some(ip) = wanted {
            ip
        } else {
            let after = self.last.unwrap_or(self.subnet.network());
            self.subnet
                .hosts()
                .filter(|ip| *ip > after)
                .chain(self.subnet.hosts().take_while(|ip| *ip <= after))
                .find(|ip| *ip != self.gateway && !self.used.contains(ip))
                .ok_or(IpamError::Exhausted {
                    subnet: self.subnet,
                })?
        };
        let ip = self.allocate(Some(ip))?;
        self.last = Some(ip);
        Ok(ip)
    }

    /// [`Ipam::allocate_next`] when `rotate`, else [`Ipam::allocate`].
    pub fn allocate_in_order(
        &mut self,
        wanted: Option<Ipv4Addr>,
        rotate: bool,
    ) -> Result<Ipv4Addr, IpamError> {
        if rotate {
            self.allocate_next(wanted)
        } else {
            self.allocate(wanted)
        }
    }

    /// Whether `ip` could be allocated now.
    pub fn check_free(&self, ip: Ipv4Addr) -> Result<(), IpamError> {
        let subnet = self.subnet;
        if !subnet.contains(ip) {
            return Err(IpamError::Outside { ip, subnet });
        }
        if ip == subnet.network() || ip == subnet.broadcast() || ip == self.gateway {
            return Err(IpamError::Reserved { ip, subnet });
        }
        if self.used.contains(&ip) {
            return Err(IpamError::Taken { ip });
        }
        Ok(())
    }

    /// Gives `ip` back; true when it was in use.
    pub fn release(&mut self, ip: Ipv4Addr) -> bool {
        self.used.remove(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(s: &str, gw: Option<&str>) -> Result<Ipam, IpamError> {
        Ipam::new(s.parse().unwrap(), gw.map(|g| g.parse().unwrap()))
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn rotation_gives_the_next_free_after_the_last_and_wraps_around() {
        let mut p = ipam("10.0.0.0/29", None).unwrap();
        assert_eq!(p.allocate_next(None).unwrap(), ip("10.0.0.2"));
        assert_eq!(p.allocate_next(None).unwrap(), ip("10.0.0.3"));
        p.release(ip("10.0.0.2"));
        // A freed address waits for its turn.
        assert_eq!(p.allocate_next(None).unwrap(), ip("10.0.0.4"));
        // One asked for is the last given, too.
        assert_eq!(
            p.allocate_next(Some(ip("10.0.0.6"))).unwrap(),
            ip("10.0.0.6")
        );
        assert_eq!(p.allocate_next(None).unwrap(), ip("10.0.0.2"), "wrapped");
        assert_eq!(p.allocate_next(None).unwrap(), ip("10.0.0.5"));
        assert!(matches!(
            p.allocate_next(None),
            Err(IpamError::Exhausted { .. })
        ));
        assert!(matches!(
            p.allocate_next(Some(ip("10.0.0.3"))),
            Err(IpamError::Taken { .. })
        ));
        // The lowest-free order is untouched by it.
        p.release(ip("10.0.0.4"));
        p.release(ip("10.0.0.3"));
        assert_eq!(p.allocate(None).unwrap(), ip("10.0.0.3"));
        // And the place survives a save.
        let back: Ipam = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn default_gateway_is_the_first_host_and_allocation_is_lowest_free() {
        let mut p = ipam("10.89.0.0/24", None).unwrap();
        assert_eq!(p.gateway(), ip("10.89.0.1"));
        assert_eq!(p.allocate(None).unwrap(), ip("10.89.0.2"));
        assert_eq!(p.allocate(None).unwrap(), ip("10.89.0.3"));
        assert!(p.release(ip("10.89.0.2")));
        assert!(!p.release(ip("10.89.0.2")));
        assert_eq!(p.allocate(None).unwrap(), ip("10.89.0.2"));
    }

    #[test]
    fn explicit_gateway_is_skipped() {
        let mut p = ipam("10.89.0.0/29", Some("10.89.0.2")).unwrap();
        let got: Vec<_> = (0..5).map(|_| p.allocate(None).unwrap()).collect();
        assert_eq!(
            got,
            [
                "10.89.0.1",
                "10.89.0.3",
                "10.89.0.4",
                "10.89.0.5",
                "10.89.0.6"
            ]
            .map(ip)
        );
        assert_eq!(
            p.allocate(None),
            Err(IpamError::Exhausted {
                subnet: "10.89.0.0/29".parse().unwrap()
            })
        );
    }

    #[test]
    fn bad_networks() {
        assert!(matches!(
            ipam("10.89.0.0/31", None),
            Err(IpamError::TooSmall { .. })
        ));
        assert!(ipam("10.89.0.0/30", None).is_ok());
        assert!(matches!(
            ipam("10.89.0.0/24", Some("10.90.0.1")),
            Err(IpamError::GatewayOutside { .. })
        ));
        assert!(matches!(
            ipam("10.89.0.0/24", Some("10.89.0.255")),
            Err(IpamError::GatewayReserved { .. })
        ));
        assert!(matches!(
            ipam("10.89.0.0/24", Some("10.89.0.0")),
            Err(IpamError::GatewayReserved { .. })
        ));
    }

    #[test]
    fn bad_requested_addresses() {
        let mut p = ipam("10.89.0.0/24", None).unwrap();
        assert_eq!(
            p.allocate(Some(ip("10.89.0.77"))).unwrap(),
            ip("10.89.0.77")
        );
        assert_eq!(
            p.allocate(Some(ip("10.89.0.77"))),
            Err(IpamError::Taken {
                ip: ip("10.89.0.77")
            })
        );
        for reserved in ["10.89.0.0", "10.89.0.1", "10.89.0.255"] {
            assert!(matches!(
                p.allocate(Some(ip(reserved))),
                Err(IpamError::Reserved { .. })
            ));
        }
        assert!(matches!(
            p.allocate(Some(ip("10.90.0.5"))),
            Err(IpamError::Outside { .. })
        ));
        // A failed request takes nothing.
        assert_eq!(p.used().count(), 1);
    }

    #[test]
    fn state_round_trips() {
        let mut p = ipam("10.89.0.0/24", None).unwrap();
        p.allocate(None).unwrap();
        let back: Ipam = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
