//! Docker's `-p` syntax:
//! `[HOST_IP:][HOST_PORT[-END]:]CPORT[-END][/tcp|udp|sctp]`.
//!
//! | spec                      | meaning                                              |
//! |---------------------------|------------------------------------------------------|
//! | `80`                      | container 80 on a host port the agent picks          |
//! | `8080:80`                 | host 8080 to container 80, every host address        |
//! | `127.0.0.1:8080:80`       | the same, on 127.0.0.1 only                          |
//! | `127.0.0.1::80`           | on 127.0.0.1, a host port the agent picks            |
//! | `8000-8010:80-90`         | each host port to its own container port             |
//! | `8000-8010:80`            | container 80 on the first free port of 8000-8010     |
//! | `53:53/udp`               | UDP (default TCP)                                    |
//! | `[::]:8080:80`            | on every IPv6 address of the host only               |
//! | `[::1]:8080:80`           | on `::1` only (reachable from the node alone)        |
//! | `[2001:db8::1]::80`       | on that IPv6 address, a host port the agent picks    |
//!
//! An IPv6 host address is written in brackets, as Docker writes it.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use serde::{Deserialize, Serialize};

/// The transport protocol of a published port.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// The IP protocol number.
    #[must_use]
    pub const fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    /// The protocol of IP protocol number `number`, if it is one of these.
    #[must_use]
    pub const fn from_number(number: u8) -> Option<Self> {
        match number {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            132 => Some(Proto::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

/// An inclusive range of ports, `start <= end`, never port 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortRange {
    start: u16,
    end: u16,
}

impl PortRange {
    #[must_use]
    pub fn start(self) -> u16 {
        self.start
    }

    #[must_use]
    pub fn end(self) -> u16 {
        self.end
    }

    /// How many ports the range holds.
    #[must_use]
    pub fn len(self) -> u32 {
        u32::from(self.end - self.start) + 1
    }

    /// Ranges always hold at least one port.
    #[must_use]
    pub fn is_empty(self) -> bool {
        false
    }

    pub fn ports(self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// One `-p` argument, parsed and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// `None`: every address of the host, both families (no address,
    /// or `0.0.0.0`); `::`: every IPv6 address of the host.
    pub host_ip: Option<IpAddr>,
    /// `None`: the agent picks a free port.
    pub host_ports: Option<PortRange>,
    pub container_ports: PortRange,
    pub proto: Proto,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port spec `{spec}`: {reason}")]
pub struct SpecError {
    pub spec: String,
    pub reason: String,
}

impl PortSpec {
    /// The spec of exactly mapping `m` (a runtime's or an engine's port
    /// mapping, which names its host port): no text between them. Port 0
    /// is no port, on either side.
    pub fn exact(m: super::PortMapping) -> Result<Self, SpecError> {
        let one = |p: u16| {
            range(&p.to_string()).map_err(|reason| SpecError {
                spec: m.to_string(),
                reason,
            })
        };
        Ok(PortSpec {
            host_ip: (m.host_ip != super::PortMapping::EVERY).then_some(m.host_ip),
            host_ports: Some(one(m.host_port)?),
            container_ports: one(m.container_port)?,
            proto: m.proto,
        })
    }

    /// Whether it is bound to IPv6 alone (`[::]`, an IPv6 address).
    #[must_use]
    pub fn is_ipv6_only(&self) -> bool {
        self.host_ip.is_some_and(|ip| ip.is_ipv6())
    }

    /// The (host port, container port) pairs this spec publishes, for a
    /// spec whose host ports are known: one pair per port of a range, or,
    /// for a host range with one container port, one pair per candidate
    /// host port (the agent takes the first free one).
    #[must_use]
    pub fn pairs(&self) -> Vec<(u16, u16)> {
        let Some(host) = self.host_ports else {
            return Vec::new();
        };
        if self.container_ports.len() == 1 {
            let c = self.container_ports.start();
            host.ports().map(|h| (h, c)).collect()
        } else {
            host.ports().zip(self.container_ports.ports()).collect()
        }
    }

    /// True for `HOST-RANGE:CPORT`: one container port on the first free
    /// port of a host range.
    #[must_use]
    pub fn picks_from_host_range(&self) -> bool {
        self.host_ports.is_some_and(|h| h.len() > 1) && self.container_ports.len() == 1
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        match (self.host_ip, self.host_ports) {
            (_, Some(h)) => write!(f, "{h}:")?,
            (Some(_), None) => f.write_str(":")?,
            (None, None) => {}
        }
        write!(f, "{}/{}", self.container_ports, self.proto)
    }
}

impl FromStr for PortSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| SpecError {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (ports, proto) = match spec.rsplit_once('/') {
            Some((p, "tcp")) => (p, Proto::Tcp),
            Some((p, "udp")) => (p, Proto::Udp),
            Some((p, "sctp")) => (p, Proto::Sctp),
            Some(_) => return Err(fail("the protocol must be tcp, udp or sctp")),
            None => (spec, Proto::Tcp),
        };
        // `[IPV6]:` first: its colons are not the fields'.
        let (ip6, ports) = match ports.strip_prefix('[') {
            Some(rest) => {
                let (ip, rest) = rest
                    .split_once("]:")
                    .ok_or_else(|| fail("an IPv6 host address is `[ADDRESS]:`"))?;
                let ip: std::net::Ipv6Addr = ip
                    .parse()
                    .map_err(|_| fail(&format!("`{ip}` is not an IPv6 address")))?;
                (Some(ip), rest)
            }
            None => (None, ports),
        };
        let fields: Vec<&str> = ports.split(':').collect();
        let (host_ip, host, container) = match (ip6, fields.as_slice()) {
            (None, [c]) => (None, None, *c),
            (None, [h, c]) => (None, Some(*h), *c),
            (None, [ip, h, c]) => {
                let ip: Ipv4Addr = ip.parse().map_err(|_| {
                    fail(&format!(
                        "`{ip}` is not an IPv4 address (an IPv6 one goes in brackets)"
                    ))
                })?;
                let every = ip.is_unspecified();
                (
                    (!every).then_some(IpAddr::V4(ip)),
                    (!h.is_empty()).then_some(*h),
                    *c,
                )
            }
            (Some(ip), [h, c]) => (Some(IpAddr::V6(ip)), (!h.is_empty()).then_some(*h), *c),
            _ => {
                return Err(fail(
                    "expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]",
                ));
            }
        };
        let container_ports = range(container).map_err(|r| fail(&r))?;
        let host_ports = host.map(range).transpose().map_err(|r| fail(&r))?;
        if let Some(h) = host_ports
            && container_ports.len() > 1
            && h.len() != container_ports.len()
        {
            return Err(fail(&format!(
                "host range {h} and container range {container_ports} differ in length"
            )));
        }
        if let Some(ip) = host_ip
            && ip.is_multicast()
        {
            return Err(fail(&format!("`{ip}` is a multicast address")));
        }
        Ok(PortSpec {
            host_ip,
            host_ports,
            container_ports,
            proto,
        })
    }
}

impl FromStr for PortRange {
    type Err = String;

    /// `P` or `P-Q`, each 1..=65535, `P <= Q`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        range(s)
    }
}

/// `P` or `P-Q`, each 1..=65535, `P <= Q`.
fn range(s: &str) -> Result<PortRange, String> {
    let port = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{p}` is not a port (1-65535)")),
        Ok(n) => Ok(n),
    };
    let (start, end) = if let Some((a, b)) = s.split_once('-') {
        (port(a)?, port(b)?)
    } else {
        let p = port(s)?;
        (p, p)
    };
    if end < start {
        return Err(format!("range {s} ends before it starts"));
    }
    Ok(PortRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PortSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn r(start: u16, end: u16) -> PortRange {
        PortRange { start, end }
    }

    #[test]
    fn docker_forms_parse() {
        assert_eq!(
            p("80"),
            PortSpec {
                host_ip: None,
                host_ports: None,
                container_ports: r(80, 80),
                proto: Proto::Tcp
            }
        );
        assert_eq!(p("8080:80").host_ports, Some(r(8080, 8080)));
        let local = p("127.0.0.1:8080:80/udp");
        assert_eq!(local.host_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(local.proto, Proto::Udp);
        let pick = p("127.0.0.1::80");
        assert_eq!(
            (pick.host_ip, pick.host_ports),
            (Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), None)
        );
        assert_eq!(
            p("0.0.0.0:8080:80").host_ip,
            None,
            "0.0.0.0 means every address"
        );
        assert_eq!(p("9000:9000/sctp").proto, Proto::Sctp);
    }

    #[test]
    fn ipv6_host_addresses_go_in_brackets() {
        let v6 = |s: &str| Some(IpAddr::V6(s.parse().unwrap()));
        let any6 = p("[::]:8080:80");
        assert_eq!(
            any6.host_ip,
            v6("::"),
            "`::` is IPv6 only, not every address"
        );
        assert_eq!(any6.host_ports, Some(r(8080, 8080)));
        assert_eq!(p("[::1]:8080:80/udp").host_ip, v6("::1"));
        let pick = p("[2001:db8::1]::80-81");
        assert_eq!(
            (pick.host_ip, pick.host_ports, pick.container_ports),
            (v6("2001:db8::1"), None, r(80, 81))
        );
    }

    #[test]
    fn ranges_map_port_to_port_or_pick_one() {
        let spec = p("8000-8002:80-82");
        assert_eq!(spec.pairs(), [(8000, 80), (8001, 81), (8002, 82)]);
        assert!(!spec.picks_from_host_range());
        let pick = p("8000-8002:80");
        assert!(pick.picks_from_host_range());
        assert_eq!(pick.pairs(), [(8000, 80), (8001, 80), (8002, 80)]);
        assert!(
            p("80-82").pairs().is_empty(),
            "no host ports yet: the agent picks"
        );
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, why) in [
            ("", "is not a port"),
            ("0", "is not a port"),
            ("65536", "is not a port"),
            ("http", "is not a port"),
            ("8080:80/icmp", "tcp, udp or sctp"),
            ("1.2.3:8080:80", "is not an IPv4 address"),
            ("::1:8080:80", "expected [HOST_IP:]"),
            ("[::1:8080:80", "`[ADDRESS]:`"),
            ("[10.0.0.1]:8080:80", "is not an IPv6 address"),
            ("[::1]:80", "expected [HOST_IP:]"),
            ("[ff02::1]:8080:80", "multicast"),
            ("224.0.0.1:8080:80", "multicast"),
            ("90-80", "ends before it starts"),
            ("8000-8010:80-85", "differ in length"),
            ("a:b:c:d", "expected [HOST_IP:]"),
        ] {
            let err = spec.parse::<PortSpec>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid port spec `{spec}`")),
                "{err}"
            );
            assert!(err.contains(why), "{spec}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "80/tcp",
            "8080:80/udp",
            "127.0.0.1:8080:80/tcp",
            "127.0.0.1::80/tcp",
            "8000-8010:80-90/tcp",
            "[::]:8080:80/tcp",
            "[2001:db8::1]::80/udp",
        ] {
            assert_eq!(p(s).to_string(), s);
            assert_eq!(p(&p(s).to_string()), p(s));
        }
    }

    #[test]
    fn protocol_numbers() {
        assert_eq!(
            (
                Proto::Tcp.number(),
                Proto::Udp.number(),
                Proto::Sctp.number()
            ),
            (6, 17, 132)
        );
    }
}
