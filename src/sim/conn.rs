//! One connection to a simulated node, request after request: read the
//! head, stream the body into the recorder, record, then answer as the
//! node's current [`Mode`] says (checked per request, so pooled
//! connections see a mode change on their next request).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::timeout;

use super::api::{self, Call};
use super::faults::{self, Transport};
use super::http1::{HeadError, Http1Conn};
use super::node::{Mode, NodeShared};
use super::record::{BodyTap, RecordedRequest};
use super::reply::{self, Reply};

/// How long an idle keep-alive connection (or a slow head) may take.
const IDLE: Duration = Duration::from_secs(120);
/// How long a request body may take to arrive.
const BODY: Duration = Duration::from_secs(600);

/// Serves requests on `io` until either side closes.
pub(crate) async fn serve<S: Transport>(io: S, node: Arc<NodeShared>) {
    let mut conn = Http1Conn::new(io);
    loop {
        let head = match timeout(IDLE, conn.read_head()).await {
            Ok(Ok(Some(head))) => head,
            Ok(Ok(None)) | Err(_) | Ok(Err(HeadError::Truncated)) => return,
            Ok(Err(HeadError::Io(e))) => {
                tracing::debug!(error = %e, "sim: reading a request head failed");
                return;
            }
            Ok(Err(HeadError::TooLarge)) => {
                let reply = Reply::error(431, "header_too_large", "Request header too large");
                let _ = reply::write(&mut conn.io, &reply, false, true).await;
                return;
            }
        };
        let framing = head.framing();
        let mut tap = BodyTap::default();
        let mut body_ok = true;
        if let (None, Ok(framing)) = (head.defect, framing) {
            if head.expects_continue() && framing != super::head::Framing::Empty {
                body_ok = conn
                    .write_flush(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .is_ok();
            }
            if body_ok {
                body_ok = matches!(
                    timeout(BODY, conn.read_body(framing, &mut tap)).await,
                    Ok(Ok(()))
                );
            }
        }
        let call_reply = {
            let call = Call {
                head: &head,
                body_len: tap.len(),
                body_prefix: tap.prefix(),
            };
            answer(&node, &call)
        };
        node.recorder.push(RecordedRequest::new(&head, tap));
        if let Some(why) = head.defect.or(framing.err()) {
            let reply = Reply::error(400, "bad_request", why);
            let _ = reply::write(&mut conn.io, &reply, false, true).await;
            return;
        }
        if !body_ok {
            return;
        }
        let head_only = head.method == "HEAD";
        let keep_alive = head.keep_alive();
        let (mode, mut reply) = call_reply;
        if keep_alive && head.version == "HTTP/1.0" {
            // HTTP/1.0 clients close unless told otherwise (ab -k).
            reply = reply.with_header("Connection", "keep-alive");
        }
        let io = &mut conn.io;
        let written = match mode {
            Mode::Normal
            | Mode::NotInCluster
            | Mode::Status(_)
            | Mode::Busy(_)
            | Mode::Redirect(_) => reply::write(io, &reply, head_only, !keep_alive).await,
            Mode::SlowHead(delay) => {
                tokio::time::sleep(delay).await;
                reply::write(io, &reply, head_only, !keep_alive).await
            }
            Mode::Smuggle => faults::smuggle(io, &reply, head_only).await,
            Mode::ClList
            | Mode::ClAndChunked
            | Mode::GzipChunked
            | Mode::Switching
            | Mode::NoContentWithCl
            | Mode::NotModifiedWithCl => {
                let bytes = faults::misframed(&mode).unwrap_or_default();
                conn.write_flush(bytes).await
            }
            Mode::Reset => return faults::reset(conn.io),
            Mode::Close | Mode::Down => return,
            Mode::Garbage => return faults::garbage(conn.io).await,
            Mode::SlowBody => return faults::slow_body(conn.io, &reply).await,
            Mode::ShortBody => return faults::short_body(conn.io).await,
            Mode::BadCl => return faults::bad_cl(conn.io).await,
            Mode::HugeHead => return faults::huge_head(conn.io, reply, head_only).await,
            Mode::ManyHeaders => return faults::many_headers(conn.io, reply, head_only).await,
        };
        if written.is_err() || !keep_alive {
            return;
        }
    }
}

/// The node's mode for this request and the reply it calls for.
fn answer(node: &NodeShared, call: &Call) -> (Mode, Reply) {
    let mode = node.mode();
    let reply = match mode {
        Mode::NotInCluster => api::not_in_cluster(),
        Mode::Status(status) => api::forced_status(status),
        Mode::Busy(secs) => api::forced_status(503).with_header("Retry-After", secs.to_string()),
        // node-local calls are answered by the follower itself
        Mode::Redirect(ref base) if !call.head.target.starts_with("/v1/bootstrap") => {
            reply::Reply::error(307, "redirect_to_master", "this node is not the master")
                .with_header("Location", format!("{base}{}", call.head.target))
        }
        _ => node.api.answer(call),
    };
    (mode, reply)
}
