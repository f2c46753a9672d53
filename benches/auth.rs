//! What the verified-credential cache buys: the cost of authenticating a
//! request whose credentials are cached (parse + HMAC + cache lookup + table
//! check) against one real bcrypt cost-10 verification, which is what every
//! request would pay without the cache; and a repeat on one connection,
//! answered by its memo (HMAC of the header + table check). Also the
//! parser alone and an
//! argon2id verification with the OWASP parameters `hash-password` writes.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use regate::auth::password::StoredHash;
use regate::auth::{hash_password, parse_basic, AuthConfig, AuthMemo, Authenticator};

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn headers(user: &str, password: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let v = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
    h.insert(AUTHORIZATION, HeaderValue::from_str(&v).unwrap());
    h
}

fn bench_auth(c: &mut Criterion) {
    let bcrypt10 = bcrypt::hash("correct-horse", 10).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.toml"),
        format!("[[users]]\nname = \"admin\"\npassword_hash = \"{bcrypt10}\"\nrole = \"admin\"\n"),
    )
    .unwrap();
    let cfg: AuthConfig = toml::from_str("").unwrap();
    let settings = cfg.validate(dir.path(), Arc::new(|_: &str| true)).unwrap();
    let auth = Authenticator::new(settings, None).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let h = headers("admin", "correct-horse");
    rt.block_on(auth.authenticate(&h, IP, &AuthMemo::default()))
        .unwrap();

    let mut g = c.benchmark_group("auth");
    g.bench_function("cached_authenticate", |b| {
        b.iter(|| {
            let fresh = AuthMemo::default();
            rt.block_on(auth.authenticate(black_box(&h), IP, &fresh))
                .unwrap()
        })
    });
    let memo = AuthMemo::default();
    g.bench_function("memo_authenticate", |b| {
        b.iter(|| {
            rt.block_on(auth.authenticate(black_box(&h), IP, &memo))
                .unwrap()
        })
    });
    g.bench_function("parse_basic", |b| {
        b.iter(|| parse_basic(black_box(&h)).unwrap())
    });
    let stored = StoredHash::parse(&bcrypt10).unwrap();
    g.sample_size(10);
    g.bench_function("bcrypt_cost10_verify", |b| {
        b.iter(|| assert!(stored.verify(black_box(b"correct-horse"))))
    });
    let argon = StoredHash::parse(&hash_password("correct-horse").unwrap()).unwrap();
    g.bench_function("argon2id_owasp_verify", |b| {
        b.iter(|| assert!(argon.verify(black_box(b"correct-horse"))))
    });
    g.finish();
}

criterion_group!(benches, bench_auth);
criterion_main!(benches);
