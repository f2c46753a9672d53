//! The audit trail: one JSON line per request, allowed or denied, written
//! off the request path by a dedicated thread through a bounded queue, and
//! chained with SHA-256 so an edited, deleted or reordered line is found
//! by [`verify()`]. The pipeline builds an [`AuditRecord`] in its single
//! exit door and submits it; this module never decides anything about a
//! request and never sees a credential.
//!
//! # Line format
//!
//! ```text
//! {"seq":42,"prev":"<64 hex>","time":"2026-11-27T15:39:17.123456Z","id":"...",...,"duration_us":1234}\n
//! ```
//!
//! `seq` and `prev` always come first, written by the writer thread; the
//! other fields are [`AuditRecord::encode_fields`]. Strings are escaped so
//! one record is exactly one line that is safe to view in a terminal, and
//! cut at 1024 bytes with a `…[truncated]` marker.
//!
//! # The chain
//!
//! Let `L_n` be the bytes of the n-th line *without* its trailing `\n`.
//!
//! * `h_n = SHA-256(L_n)`: the chain value of record n. Since `L_n`
//!   contains `prev`, every `h_n` commits to the whole history before it.
//! * `L_n`'s `prev` is `hex(h_{n-1})`; for the first record ever
//!   (`seq` 1) it is `hex(32 zero bytes)`.
//! * `seq` counts records from 1 with no gaps (records dropped because the
//!   queue was full never get one; records the sink failed to take give
//!   theirs back), so a gap means deleted lines and a step back means
//!   moved ones.
//! * The chain runs on across rotation (the first line of a new file links
//!   to the last line of `audit.jsonl.1`) and across restarts
//!   ([`AuditLog::open`] reads the last line of the file, or of `.1` when
//!   the file is empty, to recover `seq` and `h`).
//!
//! What it cannot show by itself: an edit to the very last line, a cut
//! tail, or a wholesale rewrite of everything after an edit. For those,
//! `[audit] signing_key` makes the writer append signed checkpoints
//! ([`seal`], scheduled by `checkpoint`) and copy them to a second place
//! ([`anchor`]); `verify` checks them with the public key
//! ([`verify_with`]). Without a key, keep the chain head elsewhere: the
//! writer logs `seq` and `head` (target `regate::audit`) at every rotation
//! and shutdown, [`AuditLog::stats`] exposes it, and [`VerifyReport::head`]
//! is what to compare it with.
//!
//! One writer per file: the sink holds an exclusive `flock` on it.
//!
//! # Durability
//!
//! `on_full = "block"` (default) makes `submit` wait for room, so nothing
//! is lost; `"drop"` drops and counts. [`AuditLog::shutdown`] returns once
//! every accepted record is written and synced. When the sink fails, the
//! records are counted as `failed`, and with `required = true`
//! [`AuditLog::healthy`] turns false so the gateway answers 503.

pub mod anchor;
mod breaks;
pub mod chain;
mod checkpoint;
pub mod config;
mod crosscheck;
pub mod forward;
pub mod json;
mod log;
mod reaper;
pub mod record;
mod reload;
pub mod seal;
pub mod sink;
mod syslog;
pub mod time;
pub mod verify;
mod verify_files;
mod writer;

pub use anchor::AnchorSettings;
pub use config::{AuditConfig, AuditSettings, Fsync, OnFull, SealSettings, SinkSettings};
pub use log::{AuditLog, AuditSlot, AuditStats, Submitted};
pub use record::{AuditRecord, Decision, RateLimit};
pub use verify::{verify, verify_with, Break, Unsealed, VerifyError, VerifyOptions, VerifyReport};
