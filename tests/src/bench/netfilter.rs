//! The netfilter baselines: the rules Docker writes for one bridge network
//! with published ports (B, replayed with `iptables-restore`), and the
//! same job in nftables with one map for every published port (B2); for
//! IPv4 (`iptables-restore`, `table ip`) and IPv6 (`ip6tables-restore`,
//! `table ip6`, as Docker 27 writes its NAT66).

use std::{fmt::Write as _, io::Write as _, net::IpAddr, process::Stdio};

use crate::Netns;

/// One published TCP port: `host_port` on every node address to
/// `ip:port`.
#[derive(Clone, Copy, Debug)]
pub struct Published {
    pub host_port: u16,
    pub ip: IpAddr,
    pub port: u16,
}

impl Published {
    /// The container's address with its host prefix (`/32`, `/128`).
    fn host(&self) -> String {
        let len = if self.ip.is_ipv6() { 128 } else { 32 };
        format!("{}/{len}", self.ip)
    }

    /// `ip:port` as DNAT's target (`[ip]:port` for IPv6).
    fn target(&self) -> String {
        std::net::SocketAddr::new(self.ip, self.port).to_string()
    }
}

/// Docker's rules (docker 27, iptables backend) for the bridge `bridge`
/// with `subnet`, and `ports` published in this order: nat `DOCKER` with
/// one DNAT per port, `POSTROUTING` with the network's MASQUERADE and one
/// hairpin MASQUERADE per port, filter `FORWARD` through `DOCKER-USER`,
/// `DOCKER-ISOLATION-STAGE-1/2`, the conntrack shortcut and `DOCKER` with
/// one ACCEPT per port.
#[must_use]
pub fn docker_ruleset(bridge: &str, subnet: &str, ports: &[Published]) -> String {
    let loopback = if subnet.contains(':') {
        "::1/128"
    } else {
        "127.0.0.0/8"
    };
    let mut nat = format!(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         :POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n\
         -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
         -A OUTPUT ! -d {loopback} -m addrtype --dst-type LOCAL -j DOCKER\n",
    );
    let _ = writeln!(
        nat,
        "-A POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE"
    );
    for p in ports {
        nat.push_str(&hairpin_rule(*p));
    }
    let _ = writeln!(nat, "-A DOCKER -i {bridge} -j RETURN");
    for p in ports {
        nat.push_str(&dnat_rule(bridge, *p));
    }
    nat.push_str("COMMIT\n");

    let mut filter = String::from(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         :DOCKER - [0:0]\n:DOCKER-ISOLATION-STAGE-1 - [0:0]\n\
         :DOCKER-ISOLATION-STAGE-2 - [0:0]\n:DOCKER-USER - [0:0]\n\
         -A FORWARD -j DOCKER-USER\n-A FORWARD -j DOCKER-ISOLATION-STAGE-1\n",
    );
    let _ = write!(
        filter,
        "-A FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A FORWARD -o {bridge} -j DOCKER\n\
         -A FORWARD -i {bridge} ! -o {bridge} -j ACCEPT\n\
         -A FORWARD -i {bridge} -o {bridge} -j ACCEPT\n\
         -A DOCKER-ISOLATION-STAGE-1 -i {bridge} ! -o {bridge} -j DOCKER-ISOLATION-STAGE-2\n\
         -A DOCKER-ISOLATION-STAGE-1 -j RETURN\n\
         -A DOCKER-ISOLATION-STAGE-2 -o {bridge} -j DROP\n\
         -A DOCKER-ISOLATION-STAGE-2 -j RETURN\n\
         -A DOCKER-USER -j RETURN\n"
    );
    for p in ports {
        filter.push_str(&accept_rule(bridge, *p));
    }
    filter.push_str("COMMIT\n");
    nat + &filter
}

/// What Docker adds for one more published port, as an
/// `iptables-restore --noflush` input.
#[must_use]
pub fn docker_publish_one(bridge: &str, p: Published) -> String {
    format!(
        "*nat\n{}{}COMMIT\n*filter\n{}COMMIT\n",
        hairpin_rule(p),
        dnat_rule(bridge, p),
        accept_rule(bridge, p)
    )
}

/// The rules of [`docker_publish_one`], deleted again.
#[must_use]
pub fn docker_unpublish_one(bridge: &str, p: Published) -> String {
    docker_publish_one(bridge, p).replace("-A ", "-D ")
}

fn hairpin_rule(p: Published) -> String {
    format!(
        "-A POSTROUTING -s {ip} -d {ip} -p tcp -m tcp --dport {port} -j MASQUERADE\n",
        ip = p.host(),
        port = p.port
    )
}

fn dnat_rule(bridge: &str, p: Published) -> String {
    format!(
        "-A DOCKER ! -i {bridge} -p tcp -m tcp --dport {} -j DNAT --to-destination {}\n",
        p.host_port,
        p.target()
    )
}

fn accept_rule(bridge: &str, p: Published) -> String {
    format!(
        "-A DOCKER -d {} ! -i {bridge} -o {bridge} -p tcp -m tcp --dport {} -j ACCEPT\n",
        p.host(),
        p.port
    )
}

/// The nftables table of B2: DNAT through one map keyed by protocol and
/// port (a hash lookup however many ports there are), masquerade of the
/// network, and a forward filter that lets in only answers and
/// `DNAT`ed flows. One table per family: [`NFT_TABLE`] (`ip`) and
/// [`NFT_TABLE6`] (`ip6`).
pub const NFT_TABLE: &str = "weirbench";
/// B2's IPv6 table.
pub const NFT_TABLE6: &str = "weirbench6";

/// The nftables family, the table, the address type and the address
/// keyword of `subnet`'s family.
fn nft_family(v6: bool) -> (&'static str, &'static str, &'static str, &'static str) {
    if v6 {
        ("ip6", NFT_TABLE6, "ipv6_addr", "ip6")
    } else {
        ("ip", NFT_TABLE, "ipv4_addr", "ip")
    }
}

#[must_use]
pub fn nft_ruleset(bridge: &str, subnet: &str, ports: &[Published]) -> String {
    let (family, table, addr, kw) = nft_family(subnet.contains(':'));
    let mut s = format!(
        "table {family} {table} {{\n\
         map pubs {{ type inet_proto . inet_service : {addr} . inet_service; }}\n\
         chain prerouting {{ type nat hook prerouting priority dstnat; policy accept;\n\
           iifname != \"{bridge}\" fib daddr type local dnat {kw} to meta l4proto . th dport map @pubs\n}}\n\
         chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n\
           {kw} saddr {subnet} oifname != \"{bridge}\" masquerade\n\
           oifname \"{bridge}\" ct status dnat {kw} saddr {subnet} masquerade\n}}\n\
         chain forward {{ type filter hook forward priority filter; policy drop;\n\
           ct state established,related accept\n\
           iifname \"{bridge}\" accept\n\
           oifname \"{bridge}\" ct status dnat accept\n}}\n}}\n"
    );
    // Elements in batches: one `add element` line per 500 ports.
    for chunk in ports.chunks(500) {
        s.push_str(&nft_add_elements(chunk));
    }
    s
}

/// The family and table of `ports` (IPv4 when there are none).
fn nft_table_of(ports: &[Published]) -> (&'static str, &'static str) {
    let (family, table, _, _) = nft_family(ports.first().is_some_and(|p| p.ip.is_ipv6()));
    (family, table)
}

/// `delete element` for `ports`, as `nft -f` input.
#[must_use]
pub fn nft_delete_elements(ports: &[Published]) -> String {
    let (family, table) = nft_table_of(ports);
    let elems: Vec<String> = ports
        .iter()
        .map(|p| format!("tcp . {}", p.host_port))
        .collect();
    format!(
        "delete element {family} {table} pubs {{ {} }}\n",
        elems.join(", ")
    )
}

/// `add element` for `ports`, as `nft -f` input.
#[must_use]
pub fn nft_add_elements(ports: &[Published]) -> String {
    let (family, table) = nft_table_of(ports);
    let elems: Vec<String> = ports
        .iter()
        .map(|p| format!("tcp . {} : {} . {}", p.host_port, p.ip, p.port))
        .collect();
    format!(
        "add element {family} {table} pubs {{ {} }}\n",
        elems.join(", ")
    )
}

/// Runs `program ARGS...` in `ns` with `input` on its stdin.
pub fn feed(ns: &Netns, program: &str, args: &[&str], input: &str) -> std::io::Result<()> {
    let mut child = ns
        .command(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(host_port: u16) -> Published {
        Published {
            host_port,
            ip: IpAddr::from([172, 18, 0, 2]),
            port: 80,
        }
    }

    #[test]
    fn docker_rules_have_one_dnat_accept_and_hairpin_per_port_in_order() {
        let r = docker_ruleset("br0", "172.18.0.0/16", &[port(20000), port(8080)]);
        let dnat: Vec<&str> = r.lines().filter(|l| l.contains("-j DNAT")).collect();
        assert_eq!(
            dnat,
            [
                "-A DOCKER ! -i br0 -p tcp -m tcp --dport 20000 -j DNAT --to-destination 172.18.0.2:80",
                "-A DOCKER ! -i br0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.2:80",
            ]
        );
        assert_eq!(
            r.lines().filter(|l| l.ends_with("-j ACCEPT")).count(),
            2 + 3
        );
        assert_eq!(r.matches("COMMIT").count(), 2);
    }

    #[test]
    fn nft_elements_come_in_batches() {
        let ports: Vec<Published> = (0..1001).map(|i| port(20000 + i)).collect();
        let r = nft_ruleset("br0", "172.18.0.0/16", &ports);
        assert_eq!(r.matches("add element").count(), 3);
        assert!(r.contains("tcp . 21000 : 172.18.0.2 . 80"));
    }

    #[test]
    fn the_ipv6_rules_speak_ipv6() {
        let p = Published {
            host_port: 8080,
            ip: "fd00:18::2".parse().unwrap(),
            port: 80,
        };
        let r = docker_ruleset("br0", "fd00:18::/64", &[p]);
        assert!(r.contains("--to-destination [fd00:18::2]:80"), "{r}");
        assert!(r.contains("-s fd00:18::2/128 -d fd00:18::2/128"), "{r}");
        assert!(r.contains("! -d ::1/128"), "{r}");
        let n = nft_ruleset("br0", "fd00:18::/64", &[p]);
        assert!(n.starts_with("table ip6 weirbench6"), "{n}");
        assert!(n.contains("ipv6_addr") && n.contains("dnat ip6 to"), "{n}");
        assert!(n.contains("add element ip6 weirbench6 pubs { tcp . 8080 : fd00:18::2 . 80 }"));
    }
}
