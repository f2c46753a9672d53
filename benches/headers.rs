//! Header rewriting at the gateway boundary (`upstream::headers`): a
//! realistic client request (what curl / the Python client send, plus a
//! client-supplied X-Forwarded-For to strip) and a node's response, against
//! a naive baseline that lowercases every name into a `String` and rebuilds
//! a new map, skipping names found in a `Vec<String>` deny list.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use regate::upstream::headers::{rewrite_request, rewrite_response, Forwarded};

const REQUEST: &[(&str, &str)] = &[
    ("host", "cluster.example:9443"),
    ("user-agent", "python-requests/2.32.3"),
    ("accept-encoding", "gzip, deflate"),
    ("accept", "*/*"),
    ("connection", "keep-alive"),
    (
        "authorization",
        "Basic YWRtaW5AcmVkaXMubG9jYWw6YWRtaW4xMjM=",
    ),
    ("x-forwarded-for", "10.0.0.1"),
    ("content-type", "application/json"),
];

const RESPONSE: &[(&str, &str)] = &[
    ("server", "nginx/1.22.1"),
    ("date", "Fri, 27 Nov 2026 19:30:03 GMT"),
    ("content-type", "application/json"),
    ("content-length", "1024"),
    ("cluster-state-id", "4281"),
];

const DENY: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
    "x-request-id",
    "proxy-authorization",
];

fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    m
}

/// The naive form: a fresh map, names compared as owned lowercase strings.
fn naive(headers: &HeaderMap, deny: &[String], add: &[(&str, String)]) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (k, v) in headers {
        let name = k.as_str().to_lowercase();
        if deny.contains(&name) {
            continue;
        }
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            out.append(n, v.clone());
        }
    }
    for (k, v) in add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            out.insert(n, v);
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let req = map(REQUEST);
    let resp = map(RESPONSE);
    let id = HeaderValue::from_static("e56f32ab03ba9bf8000000000003352c");
    let xff = HeaderValue::from_static("127.0.0.1");
    let deny: Vec<String> = DENY.iter().map(|s| s.to_string()).collect();

    let mut g = c.benchmark_group("headers");
    g.bench_function("rewrite_request", |b| {
        b.iter_batched_ref(
            || req.clone(),
            |h| {
                rewrite_request(
                    h,
                    Forwarded {
                        x_forwarded_for: xff.clone(),
                        request_id: &id,
                        authorization: None,
                    },
                );
                black_box(h.len())
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("rewrite_request_naive", |b| {
        b.iter(|| {
            let add = [
                ("x-forwarded-for", "127.0.0.1".to_string()),
                ("x-forwarded-proto", "https".to_string()),
                (
                    "x-request-id",
                    "e56f32ab03ba9bf8000000000003352c".to_string(),
                ),
            ];
            black_box(naive(black_box(&req), &deny, &add).len())
        })
    });
    g.bench_function("rewrite_response", |b| {
        b.iter_batched_ref(
            || resp.clone(),
            |h| {
                rewrite_response(h);
                black_box(h.len())
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("rewrite_response_naive", |b| {
        b.iter(|| black_box(naive(black_box(&resp), &deny[..7], &[]).len()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
