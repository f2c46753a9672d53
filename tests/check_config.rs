//! `regate check-config` as an operator runs it: certificate dates (error
//! when expired or not yet valid, warning within 30 days), key permissions,
//! an audit directory the service user cannot write, role names under
//! `[rate_limit.roles]`, every problem listed at once, relative paths from
//! the config's own directory, risky settings warned about, exit 78 for an
//! invalid config, `--config` as well as the positional form.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{ADMIN, VIEWER};

const BIN: &str = env!("CARGO_BIN_EXE_regate");

const GOOD: &str = "[server]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert = \"server.pem\"\nkey = \"server.key\"\n[upstream]\nnodes = [\"https://127.0.0.1:1\"]\nca = \"ca.pem\"\n[auth]\nusers = \"users.toml\"\n[audit]\npath = \"audit.jsonl\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n";

/// A directory with a CA, a certificate, a key (0600), a users file and `GOOD`.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    regate::pki::TestPki::generate()
        .unwrap()
        .write_to(dir.path())
        .unwrap();
    chmod(&dir.path().join("server.key"), 0o600);
    // a sound site: production-strength hashes (cost 4 draws a warning)
    let mut strong = String::new();
    for (name, pass, role) in [
        (ADMIN.0, ADMIN.1, "admin"),
        (VIEWER.0, VIEWER.1, "db_viewer"),
    ] {
        let hash = bcrypt::hash(pass, 10).unwrap();
        strong.push_str(&format!(
            "[[users]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nrole = \"{role}\"\n\n"
        ));
    }
    std::fs::write(dir.path().join("users.toml"), strong).unwrap();
    std::fs::write(dir.path().join("regate.toml"), GOOD).unwrap();
    dir
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `regate ARGS` in `cwd`: (exit code, stdout, stderr).
fn run_in(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check(dir: &Path) -> (i32, String, String) {
    run_in(dir, &["check-config", "regate.toml"])
}

/// A self-signed certificate for localhost valid from `not_before` to
/// `not_after`, written over server.pem / server.key.
fn write_cert(dir: &Path, not_before: SystemTime, not_after: SystemTime) {
    let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.not_before = not_before.into();
    p.not_after = not_after.into();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    chmod(&dir.join("server.key"), 0o600);
}

const DAY: Duration = Duration::from_secs(86400);

#[test]
fn a_good_config_is_ok_from_its_own_directory_with_either_form() {
    let dir = site();
    let (code, out, err) = check(dir.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "regate.toml: OK");
    assert_eq!(err, "", "no warning for a sound config");
    let (code, _, err) = run_in(dir.path(), &["check-config", "--config", "regate.toml"]);
    assert_eq!(code, 0, "{err}");
    // and from a subdirectory, through `..`
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let (code, _, err) = run_in(&sub, &["check-config", "-c", "../regate.toml"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_expired_or_not_yet_valid_certificate_is_an_error() {
    let dir = site();
    let now = SystemTime::now();
    write_cert(dir.path(), now - 40 * DAY, now - DAY);
    let (code, _, err) = check(dir.path());
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("tls.cert:") && err.contains("expired on"),
        "{err}"
    );

    write_cert(dir.path(), now + 2 * DAY, now + 90 * DAY);
    let (code, _, err) = check(dir.path());
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("tls.cert:") && err.contains("is not valid before"),
        "{err}"
    );
}

#[test]
fn a_certificate_expiring_within_30_days_and_a_readable_key_are_warnings() {
    let dir = site();
    let now = SystemTime::now();
    write_cert(dir.path(), now - DAY, now + 10 * DAY);
    let (code, out, err) = check(dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("OK"));
    assert!(
        err.contains("warning: tls.cert:")
            && err.contains("expires on")
            && (err.contains("(in 9 days)") || err.contains("(in 10 days)")),
        "{err}"
    );
    assert!(!err.contains("tls.key"), "{err}");
    chmod(&dir.path().join("server.key"), 0o644);
    let (code, _, err) = check(dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: tls.key:") && err.contains("mode 644"),
        "{err}"
    );
}

#[test]
fn an_audit_directory_the_user_cannot_write_is_an_error() {
    let dir = site();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let cfg = GOOD.replace("audit.jsonl", "logs/audit.jsonl");
    std::fs::write(dir.path().join("regate.toml"), cfg).unwrap();
    let (code, err) = if is_root() {
        // as an unprivileged service user: everything readable, logs/ not writable
        chmod(dir.path(), 0o755);
        for f in [
            "regate.toml",
            "server.pem",
            "server.key",
            "ca.pem",
            "users.toml",
        ] {
            chmod(&dir.path().join(f), 0o644);
        }
        chmod(&logs, 0o755);
        // a copy of the binary the service user can reach (the build
        // directory may sit below a directory only root may enter)
        let bin = dir.path().join("regate");
        std::fs::copy(BIN, &bin).unwrap();
        chmod(&bin, 0o755);
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["check-config", "regate.toml"])
            .current_dir(dir.path())
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    } else {
        chmod(&logs, 0o555);
        let (c, _, e) = check(dir.path());
        (c, e)
    };
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("audit.path: cannot create files in") && err.contains("logs"),
        "{err}"
    );
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

#[test]
fn a_mistyped_role_under_rate_limit_roles_is_an_error() {
    let dir = site();
    let cfg = format!(
        "{GOOD}[rate_limit.roles.admn]\nper_user = {{ rate = \"100/s\", burst = 200 }}\n[rate_limit.roles.admin]\nper_user = {{ rate = \"100/s\", burst = 200 }}\n"
    );
    std::fs::write(dir.path().join("regate.toml"), cfg).unwrap();
    let (code, _, err) = check(dir.path());
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("rate_limit.roles.admn:"), "{err}");
    assert!(!err.contains("rate_limit.roles.admin:"), "{err}");
}

#[test]
fn every_problem_is_reported_not_the_first() {
    let dir = site();
    let cfg = format!(
        "{}[timeouts]\nidle = \"forever\"\ndrain = \"0s\"\n[rate_limit.roles.nobody]\nper_user = {{ rate = \"1/s\", burst = 1 }}\n[log]\nformat = \"xml\"\n",
        GOOD.replacen("127.0.0.1:0", "not-an-address", 1)
    );
    std::fs::write(dir.path().join("regate.toml"), cfg).unwrap();
    let (code, _, err) = check(dir.path());
    assert_eq!(code, 78, "{err}");
    for key in [
        "server.listen:",
        "timeouts.idle:",
        "timeouts.drain:",
        "rate_limit.roles.nobody:",
        "log.format:",
    ] {
        assert!(err.contains(key), "`{key}` missing in:\n{err}");
    }
    assert_eq!(err.lines().count(), 5, "one line per problem:\n{err}");
}

#[test]
fn risky_settings_are_warnings() {
    let dir = site();
    let cfg = GOOD
        .replace(
            "listen = \"127.0.0.1:0\"\n[tls]",
            "listen = \"127.0.0.1:0\"\ntrusted_proxies = [\"::/0\"]\n[tls]",
        )
        .replace("[audit]\n", "[audit]\nenabled = false\n")
        + "[policy]\nmode = \"dry_run\"\n";
    std::fs::write(dir.path().join("regate.toml"), cfg).unwrap();
    let (code, _, err) = check(dir.path());
    assert_eq!(code, 0, "{err}");
    for needle in [
        "warning: policy.mode = \"dry_run\"",
        "warning: audit.enabled = false",
        "warning: server.trusted_proxies covers every address",
    ] {
        assert!(err.contains(needle), "`{needle}` missing in:\n{err}");
    }
}

#[test]
fn healthcheck_reads_the_metrics_address_from_the_config() {
    let dir = site();
    // a closed port named by the config: the probe fails naming it
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!("[metrics]\nlisten = \"0.0.0.0:{port}\"\n");
    let path: PathBuf = dir.path().join("probe.toml");
    std::fs::write(&path, cfg).unwrap();
    let (code, _, err) = run_in(dir.path(), &["healthcheck", "--config", "probe.toml"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}
