//! Password hashes from other tools (issue 17): `$2a$` bcrypt as Caddy,
//! Traefik and Go tools write it and `$argon2i$` (read-only) work through
//! the gateway; `check-config` warns about weak or legacy hashes and still
//! passes; `regate hash-password --bcrypt --cost N --user --role` prints a
//! `[[users]]` block that a users file accepts and the gateway verifies.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::*;

fn regate(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_regate"))
        .args(args)
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        // A usage error exits before reading: a broken pipe is its answer.
        let _ = input.write_all(bytes);
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn world_with_users(users: String) -> World {
    World::with(Setup {
        extra: "[auth]\nusers = \"users.toml\"\n".into(),
        files: vec![("users.toml".into(), users)],
        ..Setup::default()
    })
    .await
}

#[tokio::test]
async fn go_style_2a_and_legacy_argon2i_hashes_log_in() {
    let two_a = bcrypt::hash(ADMIN.1, 4)
        .unwrap()
        .replacen("$2b$", "$2a$", 1);
    let argon2i = {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let params = argon2::Params::new(19 * 1024, 2, 1, None).unwrap();
        argon2::Argon2::new(argon2::Algorithm::Argon2i, argon2::Version::V0x13, params)
            .hash_password(
                VIEWER.1.as_bytes(),
                &SaltString::encode_b64(b"per-test-salt-16").unwrap(),
            )
            .unwrap()
            .to_string()
    };
    let users = format!(
        "[[users]]\nname = \"{}\"\npassword_hash = \"{two_a}\"\nrole = \"admin\"\n\n\
         [[users]]\nname = \"{}\"\npassword_hash = \"{argon2i}\"\nrole = \"db_viewer\"\n",
        ADMIN.0, VIEWER.0
    );
    let w = world_with_users(users).await;
    let c = w.client(false);
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);
    assert_eq!(c.get(&w.url("/v1/bdbs"), VIEWER).await.status, 200);
    assert_eq!(
        c.get(&w.url("/v1/bdbs"), (ADMIN.0, "admin124"))
            .await
            .status,
        401
    );
    assert_eq!(
        c.get(&w.url("/v1/bdbs"), (VIEWER.0, "viewer124"))
            .await
            .status,
        401
    );

    // check-config passes and names both entries' problems.
    let out = regate(&["check-config", w.config_path.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("warning: users[0].password_hash: weak hash: bcrypt cost 4 is below 10"),
        "{err}"
    );
    assert!(
        err.contains("warning: users[1].password_hash: argon2i is accepted read-only"),
        "{err}"
    );
    assert!(
        !err.contains(&two_a) && !err.contains(&argon2i),
        "no hash in the output"
    );
}

#[tokio::test]
async fn hash_password_bcrypt_prints_a_users_block_the_gateway_accepts() {
    let out = regate(
        &[
            "hash-password",
            "--bcrypt",
            "--cost",
            "10",
            "--user",
            VIEWER.0,
            "--role",
            "db_viewer",
        ],
        Some(format!("{}\n", VIEWER.1).as_bytes()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let block = text(&out.stdout);
    assert!(block.starts_with("[[users]]\n"), "{block}");
    assert!(
        block.contains(&format!("name = \"{}\"", VIEWER.0)),
        "{block}"
    );
    assert!(block.contains("password_hash = \"$2b$10$"), "{block}");
    assert!(block.contains("role = \"db_viewer\""), "{block}");
    assert!(text(&out.stderr).is_empty(), "cost 10 is not weak");

    let w = world_with_users(block).await;
    let c = w.client(false);
    assert_eq!(c.get(&w.url("/v1/bdbs"), VIEWER).await.status, 200);
    assert_eq!(
        c.get(&w.url("/v1/bdbs"), (VIEWER.0, "nope")).await.status,
        401
    );
    let out = regate(&["check-config", w.config_path.to_str().unwrap()], None);
    assert!(out.status.success());
    // no hash warning (the test PKI's key file may draw a permissions one)
    assert!(
        !text(&out.stderr).contains("password_hash"),
        "{}",
        text(&out.stderr)
    );

    // A weak cost is allowed but warned about; --cost needs --bcrypt;
    // --user needs --role.
    let out = regate(&["hash-password", "--bcrypt", "--cost", "4"], Some(b"pw\n"));
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("$2b$04$"));
    assert!(text(&out.stderr).contains("bcrypt cost 4 is below 10"));
    let out = regate(&["hash-password", "--cost", "10"], Some(b"pw\n"));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = regate(&["hash-password", "--user", "x"], Some(b"pw\n"));
    assert_eq!(out.status.code(), Some(2));
    let out = regate(
        &["hash-password", "--user", "a:b", "--role", "admin"],
        Some(b"pw\n"),
    );
    assert_eq!(out.status.code(), Some(64), "a name with ':' is refused");
}
