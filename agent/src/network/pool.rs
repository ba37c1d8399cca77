//! Address pools: where a network created without `--subnet` gets one.
//! Docker's grammar (`daemon.json`'s `default-address-pools`, dockerd's
//! `--default-address-pool`): `base=CIDR,size=N`, the base cut into
//! subnets of prefix length `size`, taken in order; the first that
//! overlaps nothing in use (another network, an address or a route of the
//! node: a VPN's route pushes the pool aside) is the network's.

use std::{fmt, net::Ipv4Addr, str::FromStr};

use serde::{Deserialize, Serialize};

use super::Subnet;

/// One pool: `base` cut into `/size` subnets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pool {
    pub base: Subnet,
    pub size: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid address pool `{input}`: {reason} (expected base=CIDR,size=N, e.g. base=172.80.0.0/16,size=24)"
)]
pub struct PoolError {
    pub input: String,
    pub reason: String,
}

impl Pool {
    /// Docker's default pools: 172.17.0.0/16 to 172.31.0.0/16, then
    /// 192.168.0.0/16 in /20s.
    #[must_use]
    pub fn defaults() -> Vec<Pool> {
        let mut pools: Vec<Pool> = (17..=31)
            .map(|b| Pool {
                base: Subnet::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("a /16"),
                size: 16,
            })
            .collect();
        pools.push(Pool {
            base: Subnet::new(Ipv4Addr::new(192, 168, 0, 0), 16).expect("a /16"),
            size: 20,
        });
        pools
    }

    /// The pool's subnets, in order.
    pub fn subnets(self) -> impl Iterator<Item = Subnet> {
        let count = 1u64 << (self.size - self.base.prefix());
        let step = 1u64 << (32 - u32::from(self.size));
        let start = u64::from(u32::from(self.base.network()));
        (0..count).map(move |i| {
            let addr = u32::try_from(start + i * step).expect("inside the base");
            Subnet::new(Ipv4Addr::from(addr), self.size).expect("aligned to its size")
        })
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "base={},size={}", self.base, self.size)
    }
}

impl FromStr for Pool {
    type Err = PoolError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| PoolError {
            input: input.to_owned(),
            reason,
        };
        let (mut base, mut size) = (None, None);
        for field in input.split(',') {
            match field.split_once('=') {
                Some(("base", v)) if base.is_none() => {
                    base = Some(v.parse::<Subnet>().map_err(|e| fail(e.to_string()))?);
                }
                Some(("size", v)) if size.is_none() => {
                    size = Some(
                        v.parse::<u8>()
                            .map_err(|_| fail(format!("size `{v}` is not 1 to 32")))?,
                    );
                }
                _ => return Err(fail(format!("unexpected `{field}`"))),
            }
        }
        let base = base.ok_or_else(|| fail("no base".to_owned()))?;
        let size = size.ok_or_else(|| fail("no size".to_owned()))?;
        if size < base.prefix() || size > 30 {
            return Err(fail(format!(
                "size {size} must be from the base's prefix ({}) to 30",
                base.prefix()
            )));
        }
        Ok(Pool { base, size })
    }
}

impl TryFrom<String> for Pool {
    type Error = PoolError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Pool> for String {
    fn from(p: Pool) -> String {
        p.to_string()
    }
}

/// The first subnet of `pools` that overlaps none of `taken`, and its pool.
#[must_use]
pub fn pick(pools: &[Pool], taken: &[Subnet]) -> Option<(Subnet, Pool)> {
    pools.iter().find_map(|pool| {
        pool.subnets()
            .find(|s| !taken.iter().any(|t| t.overlaps(*s)))
            .map(|s| (s, *pool))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Subnet {
        text.parse().unwrap()
    }

    #[test]
    fn dockers_grammar_parses_and_says_what_is_wrong() {
        let p: Pool = "base=10.80.0.0/16,size=24".parse().unwrap();
        assert_eq!((p.base, p.size), (s("10.80.0.0/16"), 24));
        assert_eq!(p.to_string(), "base=10.80.0.0/16,size=24");
        assert_eq!("size=24,base=10.80.0.0/16".parse::<Pool>().unwrap(), p);
        for (bad, why) in [
            ("base=10.80.0.0/16", "no size"),
            ("size=24", "no base"),
            ("base=10.80.0.0/16,size=8", "must be from"),
            ("base=10.80.0.0/16,size=31", "must be from"),
            ("base=10.80.0.1/16,size=24", "host bits"),
            ("base=10.80.0.0/16,size=x", "not 1 to 32"),
            ("base=10.80.0.0/16,size=24,mtu=1", "unexpected `mtu=1`"),
            ("", "unexpected"),
        ] {
            let err = bad.parse::<Pool>().unwrap_err().to_string();
            assert!(
                err.contains(why) && err.contains("base=CIDR,size=N"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_first_free_block_is_taken_in_pool_order() {
        let pools = Pool::defaults();
        assert_eq!(pools.len(), 16);
        assert_eq!(pick(&pools, &[]), Some((s("172.17.0.0/16"), pools[0])));
        // A VPN's route over the first blocks pushes the pool aside.
        let (got, _) = pick(&pools, &[s("172.16.0.0/15"), s("172.18.0.0/16")]).unwrap();
        assert_eq!(got, s("172.19.0.0/16"));
        // Everything of 172.16/12 taken: 192.168.0.0/20, then the next.
        let (got, pool) = pick(&pools, &[s("172.16.0.0/12"), s("192.168.0.0/24")]).unwrap();
        assert_eq!((got, pool.size), (s("192.168.16.0/20"), 20));
        let small = [Pool {
            base: s("10.98.0.0/23"),
            size: 24,
        }];
        assert_eq!(
            small[0].subnets().collect::<Vec<_>>(),
            [s("10.98.0.0/24"), s("10.98.1.0/24")]
        );
        assert_eq!(pick(&small, &[s("10.98.0.0/23")]), None, "full");
    }
}
