//! Differential: the same bytes to regate's HTTP/1.1 fast path and to
//! hyper's HTTP/1 server (the parser the fast path hands over to), over
//! `tokio::io::duplex` on a current-thread runtime, with the gateway's
//! limits (16 KiB head, 100 header lines; the fast path takes at most 64).
//!
//! Agreement:
//! - the fast path serves a request: hyper delivers the same first request
//!   to its service (method, target, version, every header in order);
//! - the fast path waits for more bytes: hyper, given the same bytes and
//!   then end of input, delivers no request either;
//! - the fast path hands over: whatever hyper does is what the gateway does.
#![no_main]

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;
use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use regate::fuzzing::{fast_path, FastPath};
use tokio::io::AsyncWriteExt;

/// `limits.max_header_bytes` and `limits.max_headers` defaults, as
/// `server::conn::http_builder` passes them to hyper.
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    method: http::Method,
    target: String,
    version: http::Version,
    headers: Vec<(String, Vec<u8>)>,
}

fn seen<B>(r: &http::Request<B>) -> Seen {
    Seen {
        method: r.method().clone(),
        target: r.uri().to_string(),
        version: r.version(),
        headers: r
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

/// The first request hyper's service receives from `data` (then EOF).
fn hyper_first(data: &[u8]) -> Option<Seen> {
    runtime().block_on(async {
        let (mut client, server) = tokio::io::duplex(data.len() + (1 << 20));
        client.write_all(data).await.expect("duplex has room");
        client.shutdown().await.expect("shutdown");
        let first: Rc<RefCell<Option<Seen>>> = Rc::default();
        let slot = first.clone();
        let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            slot.borrow_mut().get_or_insert_with(|| seen(&req));
            async { Ok::<_, Infallible>(http::Response::new(Empty::<Bytes>::new())) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .max_buf_size(MAX_HEAD)
            .max_headers(MAX_HEADERS)
            .keep_alive(true)
            .half_close(false)
            .serve_connection(TokioIo::new(server), svc)
            .await;
        drop(client);
        first.take()
    })
}

fuzz_target!(|data: &[u8]| {
    let fast = fast_path(data, 64, MAX_HEAD);
    if let FastPath::Handover = fast {
        return;
    }
    let hyper = hyper_first(data);
    match fast {
        FastPath::Handover => {}
        FastPath::NeedMore => assert!(
            hyper.is_none(),
            "fast path waits for more bytes, hyper served {hyper:?}"
        ),
        FastPath::Serve { req, .. } => {
            let ours = seen(&req);
            match hyper {
                Some(theirs) => assert_eq!(ours, theirs, "fast path vs hyper"),
                None => panic!("fast path serves {ours:?}, hyper refuses"),
            }
        }
    }
});
