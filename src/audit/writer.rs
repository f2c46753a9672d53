//! The writer thread: the only code that touches the sink. It takes every
//! waiting line at once, chains them ([`ChainHead::append_line`]), writes
//! the batch with one `write` per file, rotates between lines when the
//! file is full, syncs per the `fsync` policy, and only then gives the
//! queue slots back. A plain OS thread, so a stalled disk never blocks a
//! Tokio worker. Woken by the first line after it went idle, it lingers
//! [`LINGER`] before taking a small batch: under load that turns one wake-up,
//! `stat` and `write` per request into one per few milliseconds.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chain::ChainHead;
use super::config::Fsync;
use super::json::hex;
use super::log::{lock, Shared};
use super::sink::Sink;

/// How long the writer waits after a wake-up for more lines to join the
/// batch: under load, one wake-up, `stat` and `write` per 2 ms instead of
/// per line (records reach the file at most this much later). Shorter
/// costs throughput (1 ms: -4%); longer makes each batch hold the core
/// longer (5 ms: p99 +0.2 ms at 50k requests/s on one core).
const LINGER: Duration = Duration::from_millis(2);
/// Batches smaller than this wait [`LINGER`] for more lines (never more
/// than a quarter of the queue, so a small queue does not fill meanwhile).
const SMALL_BATCH: usize = 512;

/// Runs until the queue is closed and drained, then syncs and signals done.
pub(super) fn run(shared: Arc<Shared>, mut sink: Sink, mut head: ChainHead, fsync: Fsync) {
    let guard = DoneGuard(shared.clone());
    let mut batch: VecDeque<Vec<u8>> = VecDeque::new();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut dirty_since: Option<Instant> = None;
    loop {
        let (closed, reopen) = {
            let mut q = lock(&shared.queue);
            while q.lines.is_empty() && !q.closed && !q.reopen {
                let wait = match (fsync, dirty_since) {
                    (Fsync::Every(every), Some(since)) => every.saturating_sub(since.elapsed()),
                    _ => Duration::MAX,
                };
                if wait.is_zero() {
                    break;
                }
                q.writer_idle = true;
                q = if wait == Duration::MAX {
                    shared.wake.wait(q).unwrap_or_else(|p| p.into_inner())
                } else {
                    match shared.wake.wait_timeout(q, wait) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    }
                };
            }
            q.writer_idle = false;
            let small = SMALL_BATCH.min(shared.capacity() / 4).max(1);
            if (1..small).contains(&q.lines.len()) && !q.closed && !q.reopen {
                // A small batch: let the requests in flight add their lines.
                drop(q);
                std::thread::sleep(LINGER);
                q = lock(&shared.queue);
            }
            std::mem::swap(&mut q.lines, &mut batch);
            // Once closed, no line can be pushed any more: this batch is the last.
            (q.closed, std::mem::take(&mut q.reopen))
        };
        if reopen {
            match sink.reopen() {
                Ok(()) => tracing::info!(target: "regate::audit", "audit log reopened"),
                Err(e) => set_ok(&shared, false, &e.to_string()),
            }
        }
        if !batch.is_empty() {
            let n = batch.len();
            write_batch(&shared, &mut sink, &mut head, &batch, &mut buf);
            batch.clear();
            dirty_since.get_or_insert_with(Instant::now);
            shared.permits.add_permits(n);
        }
        let due = match (fsync, dirty_since) {
            (_, None) => false,
            (Fsync::Always, Some(_)) => true,
            (Fsync::Every(every), Some(since)) => closed || since.elapsed() >= every,
        };
        if due {
            if let Err(e) = sink.sync() {
                set_ok(&shared, false, &format!("fsync: {e}"));
            }
            dirty_since = None;
        }
        if closed {
            tracing::info!(
                target: "regate::audit",
                seq = head.seq,
                head = %hex(&head.hash),
                "audit log closed"
            );
            break;
        }
    }
    drop(guard);
}

/// Chains and writes one batch. Lines that cannot be written are counted
/// as failed and the chain rolls back to the last line actually written,
/// so the next record links to what is on disk.
fn write_batch(
    shared: &Shared,
    sink: &mut Sink,
    head: &mut ChainHead,
    batch: &VecDeque<Vec<u8>>,
    buf: &mut Vec<u8>,
) {
    let mut committed = *head;
    let mut done = 0usize;
    let result = (|| -> std::io::Result<()> {
        sink.ensure_current()?;
        buf.clear();
        let mut in_buf = 0usize;
        for fields in batch {
            let before = buf.len();
            let line_head = *head;
            head.append_line(fields, buf);
            if sink.should_rotate(before, buf.len()) {
                if before > 0 {
                    sink.write(&buf[..before])?;
                    done += in_buf;
                    committed = line_head;
                    in_buf = 0;
                    buf.drain(..before);
                }
                sink.rotate()?;
                tracing::info!(
                    target: "regate::audit",
                    seq = committed.seq,
                    head = %hex(&committed.hash),
                    "audit log rotated"
                );
            }
            in_buf += 1;
        }
        sink.write(buf)?;
        done += in_buf;
        committed = *head;
        Ok(())
    })();
    shared.written.fetch_add(done as u64, Ordering::Relaxed);
    match result {
        Ok(()) => set_ok(shared, true, ""),
        Err(e) => {
            *head = committed;
            let failed = (batch.len() - done) as u64;
            shared.failed.fetch_add(failed, Ordering::Relaxed);
            set_ok(shared, false, &e.to_string());
        }
    }
    *lock(&shared.head) = *head;
}

/// Records the sink's state, logging only on a change (a failing disk
/// must not flood the service log).
fn set_ok(shared: &Shared, ok: bool, problem: &str) {
    let was = shared.sink_ok.swap(ok, Ordering::Relaxed);
    match (was, ok) {
        (true, false) => tracing::error!(
            target: "regate::audit",
            problem,
            "audit sink failing; records are counted as failed"
        ),
        (false, true) => tracing::info!(target: "regate::audit", "audit sink recovered"),
        _ => {}
    }
}

/// Signals completion however the thread ends. On a panic the waiting
/// lines are counted as failed and the queue closed, so neither
/// `shutdown()` nor a blocked submitter waits forever.
struct DoneGuard(Arc<Shared>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let shared = &self.0;
        if std::thread::panicking() {
            shared.sink_ok.store(false, Ordering::Relaxed);
            let mut q = lock(&shared.queue);
            q.closed = true;
            shared
                .failed
                .fetch_add(q.lines.len() as u64, Ordering::Relaxed);
            q.lines.clear();
            drop(q);
            shared.closed.store(true, Ordering::Release);
            shared.permits.close();
        }
        shared.done.send_replace(true);
    }
}
