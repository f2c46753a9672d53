//! Bodies stream both ways without buffering: a 50 MB upload and a 50 MB
//! download pass through the gateway while the process RSS (gateway,
//! simulator and client all live in this test process) stays bounded.

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use common::*;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use regate::sim::SimOptions;

const SIZE: u64 = 50 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
/// Far below the 50 MB a buffering hop would add.
const MAX_GROWTH_KIB: u64 = 25 * 1024;

/// A body of `left` bytes in 64 KiB chunks of one shared buffer.
struct Generated {
    chunk: Bytes,
    left: u64,
}

impl Body for Generated {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.left.min(CHUNK as u64) as usize;
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }
}

/// Samples RSS every 20 ms until stopped; returns the peak.
fn watch_rss() -> (Arc<AtomicBool>, Arc<AtomicU64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_kib()));
    let (s, p) = (stop.clone(), peak.clone());
    std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            p.fetch_max(rss_kib(), Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    (stop, peak)
}

#[tokio::test]
async fn fifty_megabytes_each_way_with_flat_memory() {
    let w = World::with(Setup {
        sim: Some(SimOptions {
            debuginfo_bytes: SIZE,
            ..SimOptions::default()
        }),
        ..Setup::default()
    })
    .await;
    // warm up connections, TLS and allocator pools
    let c = w.client(false);
    assert_eq!(c.get(&w.url("/v1/bdbs"), ADMIN).await.status, 200);

    let tls = client_tls(&w.pki.ca_pem, &[]);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client: Client<_, Generated> = Client::builder(TokioExecutor::new()).build(connector);

    let base = rss_kib();
    let (stop, peak) = watch_rss();

    // upload: chunked, unknown length
    let req = http::Request::post(w.url("/v1/modules"))
        .header("authorization", basic(ADMIN.0, ADMIN.1))
        .header("content-type", "application/octet-stream")
        .body(Generated {
            chunk: Bytes::from(vec![b'x'; CHUNK]),
            left: SIZE,
        })
        .unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    let _ = resp.into_body().collect().await.unwrap();
    assert_eq!(status, 200);

    // download
    let req = http::Request::get(w.url("/v1/debuginfo/all"))
        .header("authorization", basic(ADMIN.0, ADMIN.1))
        .body(Generated {
            chunk: Bytes::new(),
            left: 0,
        })
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            got += d.len() as u64;
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(got, SIZE);

    let uploads: Vec<_> = w
        .upstream_requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].body_len, SIZE);

    let growth = peak.load(Ordering::Relaxed).saturating_sub(base);
    assert!(
        growth < MAX_GROWTH_KIB,
        "RSS grew by {growth} KiB while streaming 2 x 50 MB"
    );
}
