//! The real `redis-enterprise` Python client (PyPI) talks to the simulated
//! cluster through the gateway, verifying the gateway's certificate
//! against the test CA. `tests/run.sh` installs the client.

mod common;

use common::*;

const SCRIPT: &str = r#"
import json, sys
from redis_enterprise import EnterpriseClient
c = EnterpriseClient.from_env()
dbs = c.databases_sync()
cluster = c.cluster_info_sync()
nodes = c.nodes_sync()
db1 = c.database_sync(1)
print(json.dumps({"dbs": [d.get("name") for d in dbs], "cluster": cluster.get("name"),
                  "nodes": len(nodes), "db1": db1.get("name")}))
"#;

#[tokio::test]
async fn python_client_reads_through_the_gateway() {
    let w = World::with(Setup {
        nodes: 3,
        ..Setup::default()
    })
    .await;
    let script = w.dir.path().join("client.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .env(
            "REDIS_ENTERPRISE_URL",
            format!("https://localhost:{}", w.addr.port()),
        )
        .env("REDIS_ENTERPRISE_USER", ADMIN.0)
        .env("REDIS_ENTERPRISE_PASSWORD", ADMIN.1)
        .env("REDIS_ENTERPRISE_CA_CERT", &w.files.ca)
        .output()
        .await
        .expect("python3 must be installed (tests/run.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed (is `pip install redis-enterprise` done? tests/run.sh does it)\nstdout: {stdout}\nstderr: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["dbs"][0], "default-db");
    assert_eq!(v["db1"], "default-db");
    assert_eq!(v["cluster"], "docker-cluster");
    assert!(v["nodes"].as_u64().unwrap() >= 1);
    // every call went through the gateway to some node
    assert!(w.upstream_requests().len() >= 4);
}
