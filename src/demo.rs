//! `regate demo`: a throwaway CA, a simulated 3-node cluster on loopback
//! and the gateway in front of it, configured through a real config file
//! written next to the certificates, so what a newcomer sees is what a
//! deployment runs.

use std::path::PathBuf;

use crate::pki::TestPki;
use crate::sim::{self, SimOptions, SimTls};

/// Runs the demo until Ctrl-C / SIGTERM.
pub async fn run(listen: String) -> std::io::Result<()> {
    let dir = demo_dir()?;
    let pki = TestPki::generate().map_err(std::io::Error::other)?;
    let files = pki.write_to(&dir)?;
    let opts = SimOptions {
        tls: Some(SimTls {
            cert_pem: pki.cert_pem.clone(),
            key_pem: pki.key_pem.clone(),
        }),
        ..SimOptions::default()
    };
    let users: Vec<(String, String)> = opts
        .users
        .iter()
        .map(|u| (u.name.clone(), u.password.clone()))
        .collect();
    // the gateway's users file: the simulated cluster's users, argon2id
    let mut users_file = String::from("# written by `regate demo`\n");
    for u in &opts.users {
        let hash = crate::auth::password::hash_password(&u.password)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        users_file.push_str(&format!(
            "\n[[users]]\nname = \"{}\"\npassword_hash = \"{hash}\"\nrole = \"{}\"\nuid = {}\n",
            u.name, u.role, u.uid
        ));
    }
    std::fs::write(dir.join("users.toml"), users_file)?;
    let cluster = sim::start(opts).await?;
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let config_path = dir.join("regate.toml");
    let config_text = format!(
        "# written by `regate demo`\n[server]\nlisten = \"{listen}\"\n\n[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n\n[upstream]\nnodes = [{}]\nca = \"ca.pem\"\n\n[auth]\nusers = \"users.toml\"\n\n[audit]\npath = \"audit.jsonl\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        nodes.join(", ")
    );
    std::fs::write(&config_path, config_text)?;
    let config = crate::config::load(&config_path).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        std::io::Error::other(format!("demo config invalid: {}", lines.join("; ")))
    })?;
    let running = crate::start(config).await?;
    let addr = running.addr;
    let ca = files.ca.display();
    println!("regate demo: a simulated 3-node Redis Enterprise cluster behind regate");
    println!("  gateway:  https://{addr}");
    for (i, u) in cluster.urls().iter().enumerate() {
        println!("  node {}:   {u}", i + 1);
    }
    println!("  CA:       {ca}");
    println!("  config:   {}", config_path.display());
    println!("  audit:    {}", dir.join("audit.jsonl").display());
    if let Some(m) = running.metrics_addr {
        println!("  metrics:  http://{m}/metrics");
    }
    println!();
    println!("Try:");
    if let Some((user, pass)) = users.first() {
        println!("  curl --cacert {ca} -u '{user}:{pass}' https://{addr}/v1/bdbs");
        println!("  curl --http2 --cacert {ca} -u '{user}:{pass}' https://{addr}/v1/cluster");
    }
    if let Some((user, pass)) = users.get(1) {
        println!("  curl --cacert {ca} -u '{user}:{pass}' https://{addr}/v1/nodes");
        println!("  curl --cacert {ca} -u '{user}:{pass}' -X DELETE https://{addr}/v1/bdbs/1   # db_viewer: 403");
    }
    println!("  curl --cacert {ca} https://{addr}/v1/bdbs        # no credentials: 401");
    println!();
    println!("Ctrl-C stops the demo.");
    let result = crate::serve_until_signal(running).await;
    cluster.shutdown().await;
    result
}

fn demo_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("regate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
