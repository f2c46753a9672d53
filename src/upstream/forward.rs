//! Sending one authorized request to one node, under the connect and
//! response-head deadlines, and classifying failures by who is at fault:
//! a request body that broke the limits is the client's (413/408), a
//! refused or reset connection is 502, a timeout is 504, a node speaking
//! something other than HTTP is 502.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use tokio::time::Timeout;

use crate::body::{BodyEnd, RequestBody, Tally};
use crate::error::Reject;
use crate::metrics::UpstreamErrorKind;

use super::client::{ClientError, HttpClient, NodeBody};
use super::framing::ProtocolError;

/// Sends `req` at `sent` and waits for the response head at most
/// `deadline` after it. A plain function returning a small future (see
/// [`HttpClient::request`]).
pub fn send<'a>(
    client: &'a HttpClient,
    req: Request<RequestBody>,
    sent: Instant,
    deadline: Duration,
    tally: Option<&'a Tally>,
) -> Forwarding<'a, impl Future<Output = Result<Response<NodeBody>, ClientError>> + 'a> {
    // Config durations are at most a year; this cannot overflow in practice.
    let until = sent
        .checked_add(deadline)
        .unwrap_or(sent + Duration::from_secs(366 * 86_400));
    Forwarding {
        inner: tokio::time::timeout_at(until.into(), client.request(req)),
        tally,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`send`].
    pub struct Forwarding<'a, F> {
        #[pin]
        inner: Timeout<F>,
        tally: Option<&'a Tally>,
    }
}

impl<F> Future for Forwarding<'_, F>
where
    F: Future<Output = Result<Response<NodeBody>, ClientError>>,
{
    type Output = Result<Response<NodeBody>, Reject>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(match ready!(this.inner.poll(cx)) {
            Err(_) => Err(Reject::UpstreamTimeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(&e, *this.tally)),
        })
    }
}

/// Maps a client error to the [`Reject`] the caller sees.
pub fn classify(e: &ClientError, tally: Option<&Tally>) -> Reject {
    match tally.map(Tally::end) {
        Some(BodyEnd::TooLarge) => return Reject::PayloadTooLarge,
        Some(BodyEnd::TimedOut) => return Reject::RequestTimeout,
        Some(BodyEnd::ClientError) => {
            return Reject::BadRequest {
                code: "request_body_error",
                description: "the request body could not be read",
            }
        }
        Some(BodyEnd::Open) | Some(BodyEnd::Complete) | None => {}
    }
    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    let mut timed_out = false;
    let mut protocol = false;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            protocol |= h.is_parse() || h.is_parse_status() || h.is_parse_too_large();
            timed_out |= h.is_timeout();
        }
        protocol |= s.is::<ProtocolError>();
        // the connector reports its own deadline as a plain error message
        timed_out |= s.to_string().contains("timed out");
        source = s.source();
    }
    if timed_out {
        Reject::UpstreamTimeout
    } else if protocol {
        Reject::UpstreamProtocol
    } else {
        Reject::UpstreamUnreachable
    }
}

/// The metrics label of an upstream failure (`None`: not the node's fault).
pub fn error_kind(r: &Reject) -> Option<UpstreamErrorKind> {
    match r {
        Reject::UpstreamUnreachable => Some(UpstreamErrorKind::Unreachable),
        Reject::UpstreamTimeout => Some(UpstreamErrorKind::Timeout),
        Reject::UpstreamProtocol => Some(UpstreamErrorKind::Protocol),
        _ => None,
    }
}
