//! The bench's cluster worlds ([`weir_tests::bench::cluster_bed`]) answer
//! on every path the cluster row measures, with the reference CNI plugins
//! (R) and with weir (K), so that `cargo xtask bench` does not find out
//! first.

use weir_tests::bench::{
    cluster_bed::{ClusterBed, SETUPS},
    load,
};

#[test]
fn both_clusters_answer_by_pod_address_and_cluster_ip() {
    for setup in SETUPS {
        let bed = ClusterBed::new(setup).unwrap();
        for to in [bed.pod_target(), ClusterBed::service_target()] {
            let rr = load::rr(bed.client(), to, 0.05, None);
            assert!(rr.transactions > 0, "{setup:?}: no answer from {to}");
            let crr = load::crr(bed.client(), to, 0.1, 1);
            assert!(
                crr.per_sec > 0.0 && crr.errors == 0,
                "{setup:?}: new connections to {to}: {crr:?}"
            );
        }
    }
}
