//! The config loader (`config::load`: TOML parse, the key-naming error
//! line, then full validation) on any file text. The file sits in a
//! directory holding a valid certificate, key, CA and users file, so
//! relative paths in the input can reach the checks past them.
//!
//! Checks:
//! - no panic, whatever the text;
//! - a refused config yields at least one problem, and each one is one line
//!   naming a key (`ConfigError`: non-empty key and problem, no newline).
//!
//! Inputs naming `/dev`, `/proc` or `/sys` are skipped: reading such a file
//! (`/dev/zero` as a certificate) would only measure the kernel.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use regate::auth::password::{CostProfile, StoredHash};

struct Dir {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

fn dir() -> &'static Dir {
    static D: OnceLock<Dir> = OnceLock::new();
    D.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = regate::pki::TestPki::generate().expect("pki");
        pki.write_to(dir.path()).expect("write pki");
        // bcrypt cost 4: the loader hashes a dummy of the same cost on every
        // load, and argon2's 19 MiB would make each run take 50 ms
        let hash = StoredHash::dummy(CostProfile::Bcrypt { cost: 4 }).expect("hash");
        let users = format!(
            "[[users]]\nname = \"admin@fuzz\"\npassword_hash = \"{}\"\nrole = \"admin\"\nuid = 1\n",
            hash.as_str()
        );
        std::fs::write(dir.path().join("users.toml"), users).expect("users");
        std::fs::write(
            dir.path().join("service.toml"),
            "username = \"svc@fuzz\"\npassword = \"svc-secret\"\n",
        )
        .expect("service");
        let config = dir.path().join("regate.toml");
        Dir { _dir: dir, config }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    let d = dir();
    std::fs::write(&d.config, text).expect("write config");
    match regate::config::load(&d.config) {
        Ok(_) => {}
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason");
            for e in &errors {
                assert!(!e.key.is_empty() && !e.problem.is_empty(), "{e:?}");
                let line = e.to_string();
                assert!(!line.contains('\n'), "two lines: {line:?}");
            }
        }
    }
});
