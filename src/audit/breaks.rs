//! How `audit verify` says what is wrong: [`VerifyError`] (unreadable
//! input, or a break at a file and line) and [`Break`], one variant per
//! kind of tampering, each rendered with the first bad record it names.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::seal::SealError;

/// Where and how the chain broke.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}, line {line}: {problem}", path.display())]
    Broken {
        path: PathBuf,
        /// 1-based.
        line: u64,
        problem: Break,
    },
}

/// What is wrong at the reported line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// Not JSON, or no `seq`/`prev`.
    Malformed(String),
    /// A line without newline that is not the end of the trail.
    Torn,
    /// The record at `path`, `line` was modified: the previous line, whose
    /// hash no longer matches the `prev` recorded here, or this line itself
    /// when its own `prev` was changed (the next link breaks too).
    Edited { path: PathBuf, line: u64 },
    /// `seq` jumps from `after` to `found`: lines were deleted.
    Deleted { after: u64, found: u64 },
    /// `seq` `found` where `expected` belonged: lines were moved or
    /// duplicated; `expected_at` is where the expected record sits.
    Reordered {
        found: u64,
        expected: u64,
        expected_at: Option<(PathBuf, u64)>,
    },
    /// The checkpoint's signature is bad or made with another key; `first`
    /// is the first record no good checkpoint covers.
    Forged {
        error: SealError,
        first: Option<(u64, PathBuf, u64)>,
    },
    /// A checkpoint sealing `covers` where the chain is at `after`: an old
    /// checkpoint replayed, or one moved.
    Misplaced { covers: u64, after: u64 },
    /// A validly signed checkpoint whose head is not the chain's: records
    /// since the last good checkpoint were changed and re-chained. `first`
    /// is the first record no good checkpoint covers.
    Rechained { first: Option<(u64, PathBuf, u64)> },
    /// More records without a checkpoint than the writer allows: some
    /// were removed. `first` is the first record not covered.
    Unsealed {
        records: u64,
        every: u64,
        first: (u64, PathBuf, u64),
    },
    /// `--key` given, but no checkpoint at all in the trail.
    NoCheckpoint,
    /// A checkpoint of the second sink seals `sealed`, past the trail's
    /// end `ends`: records were cut off.
    Truncated { ends: u64, sealed: u64 },
    /// The record sealed by a checkpoint of the second sink differs.
    Rewritten { seq: u64, anchor: (PathBuf, u64) },
    /// Rotated files whose names contradict their content's order.
    FileOrder { older: PathBuf },
    /// Forward-secure epochs must follow one another: a checkpoint is
    /// missing, or re-made with a later key.
    EpochGap { expected: u64, found: u64 },
}

fn at(first: &(u64, PathBuf, u64)) -> String {
    format!("seq {} ({}, line {})", first.0, first.1.display(), first.2)
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Break::Malformed(e) => write!(f, "malformed line: {e}"),
            Break::Torn => write!(f, "incomplete line (no newline) before the end of the trail"),
            Break::Edited { path, line } => write!(
                f,
                "edited line: {}, line {line} was modified (the chain link into this line is broken)",
                path.display()
            ),
            Break::Deleted { after, found } => write!(
                f,
                "deleted line(s): seq {found} follows seq {after}; {} record(s) missing before this line",
                found.saturating_sub(*after).saturating_sub(1)
            ),
            Break::Reordered {
                found,
                expected,
                expected_at,
            } => {
                write!(f, "reordered line: seq {found} where seq {expected} belongs")?;
                match expected_at {
                    Some((p, l)) => write!(f, " (seq {expected} is at {}, line {l})", p.display()),
                    None => write!(f, " (seq {found} repeats an earlier record)"),
                }
            }
            Break::Forged { error, first } => {
                write!(f, "forged checkpoint: {error}")?;
                match first {
                    Some(first) => write!(f, "; first record not covered by a good checkpoint: {}", at(first)),
                    None => Ok(()),
                }
            }
            Break::Misplaced { covers, after } => write!(
                f,
                "replayed or moved checkpoint: it seals seq {covers} but follows seq {after}"
            ),
            Break::Rechained { first } => {
                write!(f, "re-chained records: this checkpoint's signed head does not match the chain")?;
                match first {
                    Some(first) => write!(f, "; first record not covered by a good checkpoint: {}", at(first)),
                    None => Ok(()),
                }
            }
            Break::Unsealed { records, every, first } => write!(
                f,
                "missing checkpoint(s): {records} records without one (the writer seals every {every}); first record not covered: {}",
                at(first)
            ),
            Break::NoCheckpoint => write!(
                f,
                "no checkpoint in the trail: nothing is sealed (signing_key not set, or every checkpoint removed)"
            ),
            Break::Truncated { ends, sealed } => write!(
                f,
                "truncated trail: this checkpoint seals seq {sealed} but the trail ends at seq {ends}; records from seq {} on were cut off",
                ends + 1
            ),
            Break::Rewritten { seq, anchor } => write!(
                f,
                "rewritten record: seq {seq} is not what the checkpoint at {}, line {} sealed; the trail up to here was changed and re-chained",
                anchor.0.display(),
                anchor.1
            ),
            Break::EpochGap { expected, found } => write!(
                f,
                "forward-secure epoch {found} where {expected} belongs: a checkpoint is missing or was re-made with a later key"
            ),
            Break::FileOrder { older } => write!(
                f,
                "rotated files out of order: this file holds newer records than {}, whose name says it is newer (files swapped or renamed)",
                older.display()
            ),
        }
    }
}
