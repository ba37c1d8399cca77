//! The bench's per-packet measure ([`weir_tests::bench::testrun`]) on the
//! real programs: every case runs, and the hot figures are there exactly
//! where a run leaves the same case for the next (the measure itself
//! asserts each hot run's verdict and, for looped flows, that every run
//! was a conntrack hit).

use weir_tests::bench::testrun::{self, ROUNDS};

#[test]
fn the_per_packet_measure_times_every_case_and_the_hot_ones_hot() {
    let costs = testrun::measure(ROUNDS * 2);
    let hot: Vec<_> = costs
        .costs
        .iter()
        .filter(|c| c.hot_ns.is_some())
        .map(|c| (c.program, c.case))
        .collect();
    assert_eq!(
        hot,
        [
            ("tc_from_uplink", "established (DNAT)"),
            ("tc_from_uplink", "miss"),
            ("tc_from_uplink", "miss, trace on (another address)"),
            ("tc_from_uplink", "miss, traced (its record)"),
            ("tc_from_uplink", "drop (unsolicited)"),
            ("xdp_from_uplink", "published port (passes to tc)"),
            ("xdp_from_uplink", "miss (passes to tc)"),
            ("xdp_from_uplink", "drop (unsolicited)"),
            ("tc_from_container", "new flow out (policy)"),
            ("tc_to_uplink", "established (SNAT)"),
            ("tc_to_uplink", "translated on the veth (passes)"),
            ("tc_to_uplink", "IPv6: translated on the veth (passes)"),
            ("-", "(floor) a program that only returns"),
            ("-", "(floor) one helper call"),
            ("-", "(floor) a CT4-sized LRU lookup, hit"),
        ]
    );
    for c in &costs.costs {
        assert!(c.ns > 0.0, "{} {}: no time", c.program, c.case);
        assert!(
            c.hot_ns.is_none_or(|ns| ns > 0.0),
            "{}: no hot time",
            c.case
        );
    }
    assert_eq!(costs.sizes.len(), 4);
}
