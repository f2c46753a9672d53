//! When the writer thread seals: [`Checkpoints`] counts the records since
//! the last checkpoint and the time since the first of them, writes a
//! signed checkpoint line when `checkpoint_records` or
//! `checkpoint_interval` is reached (and at rotation, reopen, reload and
//! shutdown), and copies the newest one to the second sink once the trail
//! is synced up to it. Lives on the writer thread only; signing costs the
//! request path nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::anchor::Anchor;
use super::chain::ChainHead;
use super::config::SealSettings;
use super::forward::{self, Ratchet};

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
    /// The forward-secure key and its file (`forward_secure = true`).
    fss: Option<(PathBuf, Ratchet)>,
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
        let fss = settings.forward.as_ref().and_then(|p| match forward::load(p) {
            Ok(r) => Some((p.clone(), r)),
            Err(e) => {
                tracing::error!(target: "regate::audit", error = %e, "audit forward_secure state unreadable; checkpoints carry no forward-secure MAC");
                None
            }
        });
        Checkpoints {
            fss,
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
        self.settings.sealer.seal_forward(
            head,
            self.settings.records,
            SystemTime::now(),
            self.fss.as_ref().map(|(_, r)| r),
            buf,
        );
        if let Some((path, r)) = self.fss.as_mut() {
            // The key that made this MAC is forgotten now, on disk too.
            r.advance();
            if let Err(e) = forward::save(path, r) {
                tracing::error!(target: "regate::audit", file = %path.display(), error = %e, "audit forward_secure state not saved; a restart would reuse an old epoch");
            }
        }
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
