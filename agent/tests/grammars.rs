//! Property tests (`proptest`) of the grammars weir reads from users and
//! clients: `-p` specs, subnets, pools, allow rules, and the API's JSON.
//! Whatever the input, parsing answers `Ok` or a clear error, never a
//! panic; what parses prints back to itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use serde_json::Value;
use weir::{
    api::types::{AttachRequest, ConnectRequest},
    network::{NetworkSpec, Pool, Subnet, Subnet6},
    publish::{AllowedPort, PortSpec},
};

/// A port range as `-p` writes it, and its length.
fn range() -> impl Strategy<Value = (String, u32)> {
    (1u16..=65535, 0u16..64).prop_map(|(start, extra)| {
        let end = start.saturating_add(extra);
        if end == start {
            (start.to_string(), 1)
        } else {
            (format!("{start}-{end}"), u32::from(end - start) + 1)
        }
    })
}

fn host_ip() -> impl Strategy<Value = Option<IpAddr>> {
    prop_oneof![
        Just(None),
        any::<[u8; 4]>().prop_map(|o| Some(IpAddr::V4(Ipv4Addr::from(o)))),
        any::<[u8; 16]>().prop_map(|o| Some(IpAddr::V6(Ipv6Addr::from(o)))),
    ]
}

/// A `-p` spec in every form Docker's grammar has.
fn spec() -> impl Strategy<Value = String> {
    (
        host_ip(),
        proptest::option::of(range()),
        range(),
        prop_oneof![Just(""), Just("/tcp"), Just("/udp"), Just("/sctp")],
    )
        .prop_map(|(ip, host, (container, clen), proto)| {
            // Same-length ranges, or one container port.
            let host = host.map(|(h, hlen)| {
                if clen > 1 && hlen != clen {
                    container.clone()
                } else {
                    h
                }
            });
            let prefix = match (ip, &host) {
                (Some(IpAddr::V6(a)), h) => format!("[{a}]:{}:", h.clone().unwrap_or_default()),
                (Some(a), h) => format!("{a}:{}:", h.clone().unwrap_or_default()),
                (None, Some(h)) => format!("{h}:"),
                (None, None) => String::new(),
            };
            format!("{prefix}{container}{proto}")
        })
}

proptest! {
    #[test]
    fn a_spec_of_the_grammar_parses_and_prints_back(s in spec()) {
        match s.parse::<PortSpec>() {
            Ok(p) => {
                let again: PortSpec = p.to_string().parse().unwrap();
                prop_assert_eq!(again, p);
            }
            // Only a multicast host address is refused.
            Err(e) => prop_assert!(e.reason.contains("multicast"), "{s}: {e}"),
        }
    }

    #[test]
    fn any_text_is_a_spec_or_a_clear_error(s in "\\PC{0,40}") {
        if let Ok(p) = s.parse::<PortSpec>() {
            let again: PortSpec = p.to_string().parse().unwrap();
            prop_assert_eq!(again, p);
        }
    }

    #[test]
    fn spec_like_text_is_a_spec_or_a_clear_error(s in "[0-9a-f:.\\[\\]/-]{0,30}(/(tcp|udp|x))?") {
        if let Err(e) = s.parse::<PortSpec>() {
            prop_assert!(e.to_string().starts_with("invalid port spec"));
        }
    }

    #[test]
    fn a_subnet_prints_back_and_holds_its_network(addr in any::<u32>(), prefix in 0u8..=40) {
        let text = format!("{}/{prefix}", Ipv4Addr::from(addr));
        match text.parse::<Subnet>() {
            Ok(s) => {
                prop_assert!(prefix <= 32);
                prop_assert_eq!(s.to_string().parse::<Subnet>().unwrap(), s);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        let text6 = format!("{}/{prefix}", Ipv6Addr::from(u128::from(addr) << 96));
        if let Ok(s) = text6.parse::<Subnet6>() {
            prop_assert_eq!(s.to_string().parse::<Subnet6>().unwrap(), s);
        }
    }

    #[test]
    fn any_text_is_a_subnet_pool_or_rule_or_a_clear_error(s in "\\PC{0,40}") {
        let _ = s.parse::<Subnet>();
        let _ = s.parse::<Subnet6>();
        let _ = s.parse::<Pool>();
        if let Ok(p) = s.parse::<AllowedPort>() {
            prop_assert_eq!(p.to_string().parse::<AllowedPort>().unwrap(), p);
        }
    }

    #[test]
    fn any_json_is_a_request_or_a_clear_error(v in json()) {
        // Each fails with serde's message or gives a value that goes back
        // to JSON and reads the same.
        if let Ok(spec) = serde_json::from_value::<NetworkSpec>(v.clone()) {
            let back = serde_json::to_value(&spec).unwrap();
            prop_assert_eq!(serde_json::from_value::<NetworkSpec>(back).unwrap(), spec);
        }
        let _ = serde_json::from_value::<AttachRequest>(v.clone());
        let _ = serde_json::from_value::<ConnectRequest>(v.clone());
        let _ = serde_json::from_value::<Vec<PortSpec>>(v);
    }
}

/// JSON values, nested, with the keys the requests use among others.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("name".to_owned()),
        Just("subnet".to_owned()),
        Just("subnet6".to_owned()),
        Just("gateway".to_owned()),
        Just("internal".to_owned()),
        Just("icc".to_owned()),
        Just("netns".to_owned()),
        Just("network".to_owned()),
        Just("networks".to_owned()),
        Just("ports".to_owned()),
        Just("ip".to_owned()),
        "[a-z]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::String),
        Just(Value::String("10.1.0.0/24".into())),
        Just(Value::String("8080:80".into())),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}
