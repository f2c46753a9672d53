//! Response bodies captured from a real RS cluster (see
//! `fixtures/SOURCES.md`), embedded in the binary so the simulator needs no
//! files at run time. Maps a GET path to the captured bytes; never edits
//! them (the one refreshed license date is edited in the file itself).

/// `GET /v1/bdbs/1` as captured: the template for written databases.
pub(crate) const BDB_1: &str = include_str!("fixtures/GET_v1_bdbs_1.json");
/// `GET /v1/modules` as captured: the template for uploaded modules.
pub(crate) const MODULES: &str = include_str!("fixtures/GET_v1_modules.json");

/// Every path served verbatim from a capture, with its body.
pub(crate) const SERVED: [(&str, &str); 19] = [
    ("/v1/actions", include_str!("fixtures/GET_v1_actions.json")),
    (
        "/v1/bdb_groups",
        include_str!("fixtures/GET_v1_bdb_groups.json"),
    ),
    ("/v1/bdbs", include_str!("fixtures/GET_v1_bdbs.json")),
    ("/v1/bdbs/1", BDB_1),
    (
        "/v1/bdbs/stats",
        include_str!("fixtures/GET_v1_bdbs_stats.json"),
    ),
    (
        "/v1/bootstrap",
        include_str!("fixtures/GET_v1_bootstrap.json"),
    ),
    ("/v1/cluster", include_str!("fixtures/GET_v1_cluster.json")),
    (
        "/v1/cluster/alerts",
        include_str!("fixtures/GET_v1_cluster_alerts.json"),
    ),
    (
        "/v1/cluster/stats",
        include_str!("fixtures/GET_v1_cluster_stats.json"),
    ),
    (
        "/v1/cluster/stats/last",
        include_str!("fixtures/GET_v1_cluster_stats_last.rs5-2019.json"),
    ),
    ("/v1/crdbs", include_str!("fixtures/GET_v1_crdbs.json")),
    ("/v1/license", include_str!("fixtures/GET_v1_license.json")),
    ("/v1/modules", MODULES),
    ("/v1/nodes", include_str!("fixtures/GET_v1_nodes.json")),
    ("/v1/nodes/1", include_str!("fixtures/GET_v1_nodes_1.json")),
    (
        "/v1/nodes/stats",
        include_str!("fixtures/GET_v1_nodes_stats.json"),
    ),
    ("/v1/ocsp", include_str!("fixtures/GET_v1_ocsp.json")),
    ("/v1/proxies", include_str!("fixtures/GET_v1_proxies.json")),
    ("/v1/shards", include_str!("fixtures/GET_v1_shards.json")),
];

/// Uids that exist in the captured cluster, per resource.
pub(crate) const BDB_UIDS: [&str; 1] = ["1"];
pub(crate) const NODE_UIDS: [&str; 1] = ["1"];

/// The captured body for `GET path`, if there is one.
pub(crate) fn get(path: &str) -> Option<&'static str> {
    SERVED
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, body)| *body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_is_json() {
        for (path, body) in SERVED {
            assert!(
                serde_json::from_str::<serde_json::Value>(body).is_ok(),
                "{path}"
            );
        }
    }

    #[test]
    fn license_is_refreshed() {
        let lic: serde_json::Value = serde_json::from_str(get("/v1/license").unwrap()).unwrap();
        assert_eq!(lic["expiration_date"], "2099-12-31T00:00:00Z");
        assert_eq!(lic["expired"], false);
    }
}
