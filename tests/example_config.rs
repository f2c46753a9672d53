//! The shipped example config documents every key; it must parse with the
//! real loader (only its file paths are swapped for generated ones).

#[test]
fn example_config_parses_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    regate::pki::TestPki::generate()
        .unwrap()
        .write_to(dir.path())
        .unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/regate.example.toml"
    ))
    .unwrap()
    .replace("/etc/regate/server.pem", "server.pem")
    .replace("/etc/regate/server.key", "server.key")
    .replace("/etc/regate/cluster-ca.pem", "ca.pem")
    .replace("/etc/regate/users.toml", "users.toml")
    .replace("/var/log/regate/audit.jsonl", "audit.jsonl")
    .replace("127.0.0.1:9464", "127.0.0.1:0");
    std::fs::write(dir.path().join("users.toml"), "").unwrap();
    let path = dir.path().join("regate.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = match regate::config::load(&path) {
        Ok(c) => c,
        Err(e) => panic!("example config invalid: {e:?}"),
    };
    assert_eq!(cfg.listen.to_string(), "0.0.0.0:9443");
    assert_eq!(cfg.upstream.nodes.len(), 2);
    assert_eq!(cfg.timeouts.drain, std::time::Duration::from_secs(30));
    assert_eq!(cfg.limits.max_body_bytes, 1 << 30);
}
