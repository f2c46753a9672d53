//! When the writer thread seals: [`Checkpoints`] counts the records since
//! the last checkpoint and the time since the first of them, writes a
//! signed checkpoint line when `checkpoint_records` or
//! `checkpoint_interval` is reached (and at rotation, reopen, reload and
//! shutdown), and copies the newest one to the second sink once the trail
//! is synced up to it. Lives on the writer thread only; signing costs the
//! request path nothing.

use std::time::{Duration, Instant, SystemTime};

use super::anchor::Anchor;
use super::chain::ChainHead;
use super::config::SealSettings;

/// The writer's sealing state (present only with `signing_key`).
pub(super) struct Checkpoints {
    settings: SealSettings,
    anchor: Option<Anchor>,
    anchor_ok: bool,
    /// `seq` of the last checkpoint written to the trail (0: none since
    /// start, or unknown after a failed write: seal at the next chance).
    sealed: u64,
    /// When the first record not yet sealed was written.
    since: Option<Instant>,
    /// The newest checkpoint line, waiting for the trail to be synced
    /// before it goes to the second sink.
    pending: Option<Vec<u8>>,
}

impl Checkpoints {
    /// `sealed`: the trail already ends with a checkpoint for `head`.
    pub(super) fn new(settings: SealSettings, head: &ChainHead, sealed: bool) -> Checkpoints {
        let anchor = match Anchor::open(&settings.anchor) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!(target: "regate::audit", error = %e, "audit checkpoint_sink cannot be opened; checkpoints go to the trail only");
                None
            }
        };
        Checkpoints {
            settings,
            anchor,
            anchor_ok: true,
            sealed: if sealed { head.seq } else { 0 },
            since: None,
            pending: None,
        }
    }

    /// The settings in force (a reload compares them).
    pub(super) fn settings(&self) -> &SealSettings {
        &self.settings
    }

    /// True when `head` has records no checkpoint covers yet.
    pub(super) fn unsealed(&self, head: &ChainHead) -> bool {
        head.seq > 0 && head.seq != self.sealed
    }

    /// After a record was appended to the batch: seal right behind it
    /// when `checkpoint_records` records are waiting.
    pub(super) fn after_record(&mut self, head: &ChainHead, buf: &mut Vec<u8>) {
        if head.seq.saturating_sub(self.sealed) >= self.settings.records {
            self.seal(head, buf);
        }
    }

    /// Appends a checkpoint for `head` to `buf` (which the caller writes).
    pub(super) fn seal(&mut self, head: &ChainHead, buf: &mut Vec<u8>) {
        let start = buf.len();
        self.settings
            .sealer
            .seal(head, self.settings.records, SystemTime::now(), buf);
        self.pending = Some(buf[start..].to_vec());
        self.sealed = head.seq;
        self.since = None;
    }

    /// After a batch reached the file: start the interval clock.
    pub(super) fn written(&mut self, head: &ChainHead) {
        if self.unsealed(head) {
            self.since.get_or_insert_with(Instant::now);
        }
    }

    /// The writes since the last successful one failed: what was sealed
    /// is unknown, so seal again at the next record.
    pub(super) fn write_failed(&mut self) {
        self.sealed = 0;
        self.pending = None;
        self.since = None;
    }

    /// How long until the interval runs out (`None`: nothing to seal).
    pub(super) fn due_in(&self) -> Option<Duration> {
        self.since
            .map(|s| self.settings.interval.saturating_sub(s.elapsed()))
    }

    /// The trail is synced: copy the newest checkpoint to the second sink.
    pub(super) fn synced(&mut self) {
        let (Some(line), Some(anchor)) = (self.pending.take(), self.anchor.as_mut()) else {
            return;
        };
        let ok = anchor.send(&line);
        if let Err(e) = &ok {
            if self.anchor_ok {
                tracing::error!(target: "regate::audit", error = %e, "audit checkpoint_sink failing; checkpoints go to the trail only");
            }
        } else if !self.anchor_ok {
            tracing::info!(target: "regate::audit", "audit checkpoint_sink recovered");
        }
        self.anchor_ok = ok.is_ok();
    }
}
