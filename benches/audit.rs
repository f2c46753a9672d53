//! Audit hot path, per record: encoding the fields as JSON with the
//! hand-written writer (`AuditRecord::encode_fields`, the one regate uses)
//! against serde_json on an equivalent `#[derive(Serialize)]` view, for a
//! typical record and a hostile one (control characters, a 16 KiB name);
//! then the chain step (prefix + SHA-256 of the line) the writer thread adds,
//! and the signed checkpoint (Ed25519) it appends every `checkpoint_records`
//! records or `checkpoint_interval`, with what that costs per record at
//! the default of one per 1000 records (`audit_chain/..._per_1000`).
//!
//! The serde variant truncates fields the same way but escapes less (it
//! leaves DEL, C1 and bidi characters raw), so it is a lower bound on what
//! a correct serde version would cost.
//!
//! Run: `cargo bench --bench audit` (figures in the report / README).

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use regate::audit::chain::ChainHead;
use regate::audit::json::{MAX_FIELD_BYTES, TRUNCATED_MARKER};
use regate::audit::time::write_rfc3339_micros;
use regate::audit::{AuditRecord, Decision, RateLimit};
use serde::Serialize;

fn typical(digest: &[u8; 32]) -> AuditRecord<'_> {
    AuditRecord {
        time: SystemTime::now(),
        request_id: "01JDQ4Z8X9V6M2K7T3N5R8W1YB",
        client_ip: "192.0.2.44".parse().unwrap(),
        client_port: 51234,
        tls_version: "TLSv1.3",
        sni: Some("regate.example.com"),
        client_cert: None,
        client_cert_sha256: None,
        user: Some("ops-alice@example.com"),
        attempted_user: None,
        role: Some("db_member"),
        identity_source: Some("cluster"),
        method: "PUT",
        path: Some("/v1/bdbs/12"),
        raw_path: b"/v1/bdbs/12",
        route: Some("/v1/bdbs/{uid}"),
        api_version: Some("v1"),
        decision: Decision::Allow,
        rule: Some("rbac:db_member"),
        permission: Some("update_bdb"),
        rate_limit: RateLimit::Pass,
        upstream: Some("https://node1.cluster.local:9443"),
        upstream_tried: &[],
        upstream_status: Some(200),
        status: 200,
        bytes_in: 512,
        bytes_out: 2048,
        complete: true,
        duration: Duration::from_micros(4321),
        upstream_duration: Some(Duration::from_micros(3900)),
        body_sha256: Some(digest),
    }
}

/// Truncated like the hand-written writer does.
struct Field<'a>(&'a str);

impl Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.len() <= MAX_FIELD_BYTES {
            return s.serialize_str(self.0);
        }
        let mut end = MAX_FIELD_BYTES;
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        s.serialize_str(&format!("{}{TRUNCATED_MARKER}", &self.0[..end]))
    }
}

#[derive(Serialize)]
struct SerdeView<'a> {
    time: &'a str,
    id: Field<'a>,
    client_ip: String,
    client_port: u16,
    tls: Field<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sni: Option<Field<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<Field<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Field<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_source: Option<Field<'a>>,
    method: Field<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<Field<'a>>,
    raw_path: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<Field<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<Field<'a>>,
    decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<Field<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permission: Option<Field<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream: Option<Field<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_status: Option<u16>,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_duration_us: Option<u64>,
    duration_us: u64,
}

fn serde_encode(r: &AuditRecord<'_>, out: &mut Vec<u8>) {
    let mut time = Vec::with_capacity(27);
    write_rfc3339_micros(r.time, &mut time);
    let raw = &r.raw_path[..r.raw_path.len().min(MAX_FIELD_BYTES)];
    let view = SerdeView {
        time: std::str::from_utf8(&time).unwrap_or(""),
        id: Field(r.request_id),
        client_ip: r.client_ip.to_string(),
        client_port: r.client_port,
        tls: Field(r.tls_version),
        sni: r.sni.map(Field),
        user: r.user.map(Field),
        role: r.role.map(Field),
        identity_source: r.identity_source.map(Field),
        method: Field(r.method),
        path: r.path.map(Field),
        raw_path: String::from_utf8_lossy(raw),
        route: r.route.map(Field),
        api_version: r.api_version.map(Field),
        decision: r.decision.as_str(),
        rule: r.rule.map(Field),
        permission: r.permission.map(Field),
        rate_limit: match r.rate_limit {
            RateLimit::NotChecked => None,
            RateLimit::Pass => Some("pass"),
            RateLimit::Limited(_) => Some("limited"),
        },
        upstream: r.upstream.map(Field),
        upstream_status: r.upstream_status,
        status: r.status,
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
        complete: r.complete,
        body_sha256: r.body_sha256.map(|d| regate::audit::json::hex(d)),
        upstream_duration_us: r.upstream_duration.map(|d| d.as_micros() as u64),
        duration_us: r.duration.as_micros() as u64,
    };
    let _ = serde_json::to_writer(out, &view);
}

fn encode(c: &mut Criterion) {
    let digest = [0xabu8; 32];
    let long = "A".repeat(16 * 1024);
    let hostile_user = format!("adm\r\nin FAKE:x\x1b[2J\"\\{long}");
    let mut hostile = typical(&digest);
    hostile.user = Some(&hostile_user);
    hostile.raw_path = b"/v1/bdbs%0d%0a\xff\xfe/\x1b]0;t\x07";
    for (name, rec) in [("typical", typical(&digest)), ("hostile", hostile)] {
        let mut g = c.benchmark_group(format!("audit_encode/{name}"));
        let mut out = b"{".to_vec();
        rec.encode_fields(&mut out);
        let mut via_serde = Vec::new();
        serde_encode(&rec, &mut via_serde);
        // Both must be valid JSON saying the same thing.
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_slice(&out).expect("hand-written JSON is valid"),
            serde_json::from_slice(&via_serde).expect("serde JSON is valid"),
        );
        assert_eq!(a["user"], b["user"]);
        assert_eq!(a["raw_path"], b["raw_path"]);
        g.throughput(Throughput::Bytes(out.len() as u64));
        g.bench_function("hand_written", |b| {
            b.iter(|| {
                out.clear();
                black_box(&rec).encode_fields(&mut out);
                black_box(out.len())
            })
        });
        g.bench_function("serde_json", |b| {
            b.iter(|| {
                out.clear();
                serde_encode(black_box(&rec), &mut out);
                black_box(out.len())
            })
        });
        g.finish();
    }
}

fn chain(c: &mut Criterion) {
    let digest = [0xabu8; 32];
    let mut fields = Vec::new();
    typical(&digest).encode_fields(&mut fields);
    let mut head = ChainHead::genesis();
    let mut out = Vec::with_capacity(4096);
    let mut g = c.benchmark_group("audit_chain");
    g.throughput(Throughput::Bytes(fields.len() as u64 + 100));
    g.bench_function("append_line_sha256", |b| {
        b.iter(|| {
            out.clear();
            head.append_line(black_box(&fields), &mut out);
            black_box(out.len())
        })
    });
    // The writer thread's cost per record with checkpoints every 1000
    // records (the default): 1000 chain steps and one signature.
    let (sealer, _) = regate::audit::seal::Sealer::generate().expect("key");
    g.throughput(Throughput::Elements(1));
    g.bench_function("seal_checkpoint_ed25519", |b| {
        b.iter(|| {
            out.clear();
            sealer.seal(black_box(&head), 1000, SystemTime::now(), &mut out);
            black_box(out.len())
        })
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("append_1000_lines_and_seal_per_1000", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..1000 {
                head.append_line(black_box(&fields), &mut out);
            }
            sealer.seal(&head, 1000, SystemTime::now(), &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, encode, chain);
criterion_main!(benches);
