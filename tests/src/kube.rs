//! kube-proxy's rules (iptables mode) for a list of Services, written as
//! kube-proxy writes them (`pkg/proxy/iptables/proxier.go`, 1.28-1.31):
//! the `iptables-restore --noflush` input of a full sync, with its chains'
//! hashed names, and the jumps from the built-in chains it prepends. A
//! dual-stack kube-proxy runs one proxier per family, each with the
//! Services (and endpoints) of its family: [`rules`] writes the one of
//! the cluster CIDR's family, the IPv6 one `ip6tables-restore`'s input
//! (the same chains, an endpoint's chain hashed and its DNAT written with
//! `[address]:port`, localhost kept out of the node ports). No kube-proxy
//! binary can be had here; its rules are plain iptables, so a node of the
//! bed gets exactly what kube-proxy would give it.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
};

use sha2::{Digest, Sha256};

/// kube-proxy's masquerade mark (bit 14), as it writes it.
const MASQ_MARK: &str = "0x004000";

/// One port of a Service, with its endpoints.
#[derive(Clone, Debug)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// The port's name (`http`), or empty for an unnamed port.
    pub port_name: String,
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    /// Its cluster IP of one family: a dual-stack Service is two of
    /// these, one a family, with one name.
    pub cluster_ip: IpAddr,
    pub port: u16,
    /// The node port of a Service of type `NodePort`.
    pub node_port: Option<u16>,
    /// Its endpoints, of its cluster IP's family: (pod or other address,
    /// port).
    pub endpoints: Vec<(IpAddr, u16)>,
}

impl Service {
    /// `ns/name[:port]`, kube-proxy's `ServicePortName`.
    fn port_name(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port_name)
        }
    }

    /// The 16 characters of kube-proxy's chain names: base32 of the
    /// SHA-256 of the port name, the protocol and (an endpoint's chain)
    /// the endpoint as Go's `net.JoinHostPort` writes it (`ip:port`,
    /// `[ip]:port`). A Service's chains are one name in both families.
    fn hash(&self, endpoint: Option<(IpAddr, u16)>) -> String {
        let mut text = format!("{}{}", self.port_name(), self.protocol);
        if let Some((ip, port)) = endpoint {
            let _ = write!(text, "{}", SocketAddr::new(ip, port));
        }
        data_encoding::BASE32.encode(&Sha256::digest(text.as_bytes()))[..16].to_owned()
    }

    /// `KUBE-SVC-…`.
    #[must_use]
    pub fn svc_chain(&self) -> String {
        format!("KUBE-SVC-{}", self.hash(None))
    }

    fn ext_chain(&self) -> String {
        format!("KUBE-EXT-{}", self.hash(None))
    }

    fn sep_chain(&self, endpoint: (IpAddr, u16)) -> String {
        format!("KUBE-SEP-{}", self.hash(Some(endpoint)))
    }
}

/// One Service's part of the rules: its chains, its nat rules, its
/// `KUBE-NODEPORTS` rule, and (no endpoints) its filter reject.
#[derive(Default)]
struct Part {
    chains: Vec<String>,
    nat: String,
    node_ports: String,
    reject: String,
}

fn part(svc: &Service, cluster_cidr: &str) -> Part {
    let mut out = Part::default();
    let spn = svc.port_name();
    let p = svc.protocol;
    let (ip, port) = (svc.cluster_ip, svc.port);
    if svc.endpoints.is_empty() {
        let _ = writeln!(
            out.reject,
            "-A KUBE-SERVICES -m comment --comment \"{spn} has no endpoints\" -m {p} -p {p} -d {ip} --dport {port} -j REJECT"
        );
        return out;
    }
    let svc_chain = svc.svc_chain();
    out.chains.push(svc_chain.clone());
    let body = &mut out.nat;
    let _ = writeln!(
        body,
        "-A KUBE-SERVICES -m comment --comment \"{spn} cluster IP\" -m {p} -p {p} -d {ip} --dport {port} -j {svc_chain}"
    );
    let _ = writeln!(
        body,
        "-A {svc_chain} -m comment --comment \"{spn} cluster IP\" -m {p} -p {p} -d {ip} --dport {port} ! -s {cluster_cidr} -j KUBE-MARK-MASQ"
    );
    if let Some(node_port) = svc.node_port {
        let ext = svc.ext_chain();
        out.chains.push(ext.clone());
        let _ = writeln!(
            out.node_ports,
            "-A KUBE-NODEPORTS -m comment --comment {spn} -m {p} -p {p} --dport {node_port} -j {ext}"
        );
        let _ = writeln!(
            body,
            "-A {ext} -m comment --comment \"masquerade traffic for {spn} external destinations\" -j KUBE-MARK-MASQ"
        );
        let _ = writeln!(body, "-A {ext} -j {svc_chain}");
    }
    let n = svc.endpoints.len();
    for (i, &(ep_ip, ep_port)) in svc.endpoints.iter().enumerate() {
        let sep = svc.sep_chain((ep_ip, ep_port));
        let endpoint = SocketAddr::new(ep_ip, ep_port);
        out.chains.push(sep.clone());
        let left = n - i;
        let pick = if left > 1 {
            #[expect(
                clippy::cast_precision_loss,
                reason = "a Service has far fewer than 2^52 endpoints"
            )]
            let probability = 1.0 / left as f64;
            format!("-m statistic --mode random --probability {probability:.10} ")
        } else {
            String::new()
        };
        let _ = writeln!(
            body,
            "-A {svc_chain} -m comment --comment \"{spn} -> {endpoint}\" {pick}-j {sep}"
        );
        let _ = writeln!(
            body,
            "-A {sep} -m comment --comment {spn} -s {ep_ip} -j KUBE-MARK-MASQ"
        );
        let _ = writeln!(
            body,
            "-A {sep} -m comment --comment {spn} -m {p} -p {p} -j DNAT --to-destination {endpoint}"
        );
    }
    out
}

/// The `iptables-restore --noflush` input of kube-proxy's full sync for
/// the `services` of `cluster_cidr`'s family on a node of a cluster whose
/// pods of that family are `cluster_cidr` (`--cluster-cidr`), followed by
/// the jumps it prepends to the built-in chains: an IPv6 CIDR makes the
/// IPv6 proxier's, `ip6tables-restore`'s input.
#[must_use]
pub fn rules(services: &[Service], cluster_cidr: &str) -> String {
    let ipv6 = cluster_cidr.contains(':');
    let parts: Vec<Part> = services
        .iter()
        .filter(|s| s.cluster_ip.is_ipv6() == ipv6)
        .map(|s| part(s, cluster_cidr))
        .collect();
    filter(&parts) + &nat(&parts, ipv6)
}

fn filter(parts: &[Part]) -> String {
    let mut out = String::from("*filter\n");
    for chain in [
        "KUBE-SERVICES",
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-FORWARD",
        "KUBE-NODEPORTS",
        "KUBE-PROXY-FIREWALL",
    ] {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    for p in parts {
        out.push_str(&p.reject);
    }
    out.push_str("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n");
    let _ = writeln!(
        out,
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT"
    );
    out.push_str("-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    // The jumps kube-proxy prepends (`EnsureRule(Prepend, …)`).
    for (chain, to, new) in [
        ("INPUT", "KUBE-EXTERNAL-SERVICES", true),
        ("FORWARD", "KUBE-EXTERNAL-SERVICES", true),
        ("INPUT", "KUBE-NODEPORTS", false),
        ("FORWARD", "KUBE-SERVICES", true),
        ("OUTPUT", "KUBE-SERVICES", true),
        ("FORWARD", "KUBE-FORWARD", false),
        ("INPUT", "KUBE-PROXY-FIREWALL", true),
        ("OUTPUT", "KUBE-PROXY-FIREWALL", true),
        ("FORWARD", "KUBE-PROXY-FIREWALL", true),
    ] {
        let state = if new {
            "-m conntrack --ctstate NEW "
        } else {
            ""
        };
        let _ = writeln!(out, "-I {chain} 1 {state}-j {to}");
    }
    out.push_str("COMMIT\n");
    out
}

fn nat(parts: &[Part], ipv6: bool) -> String {
    let mut out = String::from("*nat\n");
    let base = [
        "KUBE-SERVICES",
        "KUBE-NODEPORTS",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
    ];
    for chain in base.iter().copied().chain(
        parts
            .iter()
            .flat_map(|p| p.chains.iter().map(String::as_str)),
    ) {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    let _ = writeln!(
        out,
        "-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"
    );
    let _ = writeln!(out, "-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}");
    out.push_str("-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n");
    let _ = writeln!(out, "-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}");
    for p in parts {
        out.push_str(&p.nat);
    }
    for p in parts {
        out.push_str(&p.node_ports);
    }
    // Localhost node ports never work over IPv6: kube-proxy leaves `::1`
    // out.
    let not_localhost = if ipv6 { " ! -d ::1/128" } else { "" };
    let _ = writeln!(
        out,
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL{not_localhost} -j KUBE-NODEPORTS"
    );
    out.push_str(
        "-I PREROUTING 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    out.push_str(
        "-I OUTPUT 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    out.push_str("-I POSTROUTING 1 -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\nCOMMIT\n");
    out
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn svc(ns: &str, name: &str, port_name: &str, protocol: &'static str) -> Service {
        Service {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            port_name: port_name.to_owned(),
            protocol,
            cluster_ip: Ipv4Addr::new(10, 96, 0, 10).into(),
            port: 53,
            node_port: None,
            endpoints: vec![(Ipv4Addr::new(10, 180, 0, 1).into(), 80)],
        }
    }

    /// Chain names that real clusters and kube-proxy's own tests show.
    #[test]
    fn chain_names_are_kube_proxy_s() {
        assert_eq!(
            svc("kube-system", "kube-dns", "dns-tcp", "tcp").svc_chain(),
            "KUBE-SVC-ERIFXISQEP7F7OF4"
        );
        assert_eq!(
            svc("kube-system", "kube-dns", "dns", "udp").svc_chain(),
            "KUBE-SVC-TCOU7JCQXEZGVUNU"
        );
        assert_eq!(
            svc("default", "kubernetes", "https", "tcp").svc_chain(),
            "KUBE-SVC-NPX46M4PTMTKRN6Y"
        );
        let s = svc("ns1", "svc1", "p80", "tcp");
        assert_eq!(s.svc_chain(), "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(
            s.sep_chain((Ipv4Addr::new(10, 180, 0, 1).into(), 80)),
            "KUBE-SEP-SXIVWICOYRO3J4NJ"
        );
    }

    #[test]
    fn endpoints_are_picked_with_kube_proxy_s_odds() {
        let mut s = svc("default", "web", "http", "tcp");
        s.endpoints.push((Ipv4Addr::new(10, 180, 0, 2).into(), 80));
        s.endpoints.push((Ipv4Addr::new(10, 180, 0, 3).into(), 80));
        let text = rules(&[s], "10.180.0.0/16");
        assert!(text.contains("--probability 0.3333333333 -j KUBE-SEP-"));
        assert!(text.contains("--probability 0.5000000000 -j KUBE-SEP-"));
        assert!(text.contains("! -s 10.180.0.0/16 -j KUBE-MARK-MASQ"));
        assert!(text.contains("-j DNAT --to-destination 10.180.0.3:80"));
    }

    /// The IPv6 proxier's rules: only the IPv6 Services, the same chain
    /// names for a Service (an endpoint's differ: its address is in the
    /// hash), endpoints written `[address]:port`, no localhost node ports.
    #[test]
    fn the_ipv6_proxier_writes_the_ipv6_services() {
        let v4 = Service {
            node_port: Some(30080),
            ..svc("default", "web", "http", "tcp")
        };
        let ep6: Ipv6Addr = "fd00:245:1::2".parse().unwrap();
        let v6 = Service {
            cluster_ip: "fd00:96::10".parse().unwrap(),
            endpoints: vec![(ep6.into(), 80)],
            ..v4.clone()
        };
        assert_eq!(v4.svc_chain(), v6.svc_chain(), "one Service, one name");
        assert_ne!(v4.sep_chain(v4.endpoints[0]), v6.sep_chain(v6.endpoints[0]));
        let text = rules(&[v4.clone(), v6.clone()], "fd00:245::/56");
        assert!(text.contains("-d fd00:96::10 --dport 53 ! -s fd00:245::/56 -j KUBE-MARK-MASQ"));
        assert!(text.contains("-j DNAT --to-destination [fd00:245:1::2]:80"));
        assert!(text.contains("\"default/web:http -> [fd00:245:1::2]:80\""));
        assert!(text.contains(&format!(":{} - [0:0]", v6.sep_chain(v6.endpoints[0]))));
        assert!(text.contains("--dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS"));
        assert!(!text.contains("10.96.0.10"), "an IPv4 Service in ip6tables");
        let text4 = rules(&[v4, v6], "10.180.0.0/16");
        assert!(!text4.contains("fd00"), "an IPv6 Service in iptables");
        assert!(text4.contains("--dst-type LOCAL -j KUBE-NODEPORTS"));
    }
}
