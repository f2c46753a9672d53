//! The policy's hot path: `canonicalize` + `Policy::resolve` +
//! `Policy::authorize` on a realistic mix of requests (reads, writes,
//! denials, self-service, an encoded path), against a naive baseline that
//! scans every route template linearly (segment patterns, most specific
//! match wins) and looks permissions up in a `HashSet<String>`. Shows that
//! the compiled trie plus bitset roles keep a decision well under a
//! microsecond, and how much the naive form costs.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use regate::context::{IdentitySource, Principal};
use regate::policy::{canonicalize, Policy};

const MIX: &[(&str, &str, &str)] = &[
    ("GET", "/v1/bdbs", "db_viewer"),
    ("GET", "/v1/bdbs/1", "db_viewer"),
    ("GET", "/v1/bdbs/stats/last/1", "cluster_viewer"),
    ("GET", "/v1/cluster", "admin"),
    ("GET", "/v1/nodes/2/status", "cluster_member"),
    ("PUT", "/v1/bdbs/1", "db_member"),
    ("DELETE", "/v1/bdbs/1", "db_viewer"),
    ("POST", "/v2/bdbs", "admin"),
    ("GET", "/v1/users", "db_viewer"),
    ("GET", "/v1/users/3", "db_viewer"),
    ("PUT", "/v1/users/password", "db_viewer"),
    ("GET", "/v1/shards/stats/last/5", "admin"),
    ("GET", "/v1/bdbs/%31/availability", "db_viewer"),
    ("GET", "/v1/bdbs/crdt_sources/alerts/1/2/x", "admin"),
    ("GET", "/v1/nope", "admin"),
    ("GET", "/v1/cluster/sso", "cluster_viewer"),
];

fn principal(role: &str) -> Principal {
    Principal {
        user: "alice".into(),
        uid: Some(3),
        role: Arc::from(role),
        source: IdentitySource::File,
    }
}

/// The baseline: every template as a segment pattern, scanned in order.
struct Naive {
    routes: Vec<(Method, Vec<Option<String>>, String)>,
    roles: HashMap<String, HashSet<String>>,
}

impl Naive {
    fn new(policy: &Policy) -> Self {
        let routes = policy
            .routes()
            .map(|r| {
                let pat = r
                    .template
                    .split('/')
                    .skip(1)
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                (r.method.clone(), pat, r.permission.to_owned())
            })
            .collect::<Vec<_>>();
        let perms: HashSet<&str> = policy.routes().map(|r| r.permission).collect();
        let roles = policy
            .role_names()
            .map(|role| {
                let held = perms
                    .iter()
                    .filter(|p| policy.role_holds(role, p))
                    .map(|p| p.to_string())
                    .collect();
                (role.to_owned(), held)
            })
            .collect();
        Naive { routes, roles }
    }

    fn decide(&self, method: &Method, path: &str, role: &str) -> bool {
        let segs: Vec<&str> = path.split('/').skip(1).collect();
        let mut best: Option<(usize, &str)> = None;
        for (m, pat, perm) in &self.routes {
            if m != method || pat.len() != segs.len() {
                continue;
            }
            let mut literals = 0;
            let ok = pat.iter().zip(&segs).all(|(p, s)| match p {
                Some(lit) => {
                    literals += 1;
                    lit == s
                }
                None => !s.is_empty(),
            });
            if ok && best.is_none_or(|(n, _)| literals > n) {
                best = Some((literals, perm));
            }
        }
        match best {
            Some((_, perm)) => self.roles.get(role).is_some_and(|p| p.contains(perm)),
            None => false,
        }
    }
}

fn bench(c: &mut Criterion) {
    let policy = Policy::builtin().expect("builtin policy");
    let naive = Naive::new(&policy);
    let reqs: Vec<(Method, &str, Principal)> = MIX
        .iter()
        .map(|(m, p, r)| {
            (
                Method::from_bytes(m.as_bytes()).expect("method"),
                *p,
                principal(r),
            )
        })
        .collect();

    let mut g = c.benchmark_group("policy_decision_mix16");
    g.bench_function("trie_canonicalize_resolve_authorize", |b| {
        b.iter(|| {
            let mut allowed = 0;
            for (m, p, who) in &reqs {
                let Ok(path) = canonicalize(black_box(p)) else {
                    continue;
                };
                let Ok(hit) = policy.resolve(m, &path, None) else {
                    continue;
                };
                allowed += usize::from(policy.authorize(&hit, who).is_ok());
            }
            allowed
        })
    });
    g.bench_function("naive_linear_scan", |b| {
        b.iter(|| {
            let mut allowed = 0;
            for (m, p, who) in &reqs {
                let Ok(path) = canonicalize(black_box(p)) else {
                    continue;
                };
                allowed += usize::from(naive.decide(m, &path, &who.role));
            }
            allowed
        })
    });
    g.finish();

    let mut g = c.benchmark_group("policy_decision_single");
    let viewer = principal("db_viewer");
    g.bench_function("permit_get_bdb", |b| {
        b.iter(|| {
            let path = canonicalize(black_box("/v1/bdbs/1")).ok()?;
            let hit = policy.resolve(&Method::GET, &path, None).ok()?;
            policy.authorize(&hit, &viewer).ok()
        })
    });
    g.bench_function("deny_delete_bdb", |b| {
        b.iter(|| {
            let path = canonicalize(black_box("/v1/bdbs/1")).ok()?;
            let hit = policy.resolve(&Method::DELETE, &path, None).ok()?;
            policy.authorize(&hit, &viewer).err()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("canonicalize");
    g.bench_function("clean", |b| {
        b.iter(|| canonicalize(black_box("/v1/bdbs/stats/last/1")).is_ok())
    });
    g.bench_function("encoded", |b| {
        b.iter(|| canonicalize(black_box("/v1/bdbs/%31/availability")).is_ok())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
