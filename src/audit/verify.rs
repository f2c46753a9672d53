//! `regate audit verify FILE...`: walks the chain through the given files
//! (put in chain order by their first `seq`, so a shell glob works) and
//! reports the first break: which file, which line, and what happened to
//! it (edited, deleted, reordered, malformed). Reads only; never repairs.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::chain::{parse_link, GENESIS};
use super::json::hex;

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The files in chain order, with their record counts.
    pub files: Vec<(PathBuf, u64)>,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Hex SHA-256 of the last line: compare with an anchor kept elsewhere
    /// (the writer logs it on rotation and shutdown) to catch an edit of
    /// the very last line or a truncated tail.
    pub head: String,
    /// True when the first record is the first ever (`seq` 1, zero `prev`);
    /// false when older files were rotated away.
    pub from_genesis: bool,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "OK: {} records in {} file(s)",
            self.records,
            self.files.len()
        )?;
        if let (Some(a), Some(b)) = (self.first_seq, self.last_seq) {
            write!(f, ", seq {a}..{b}")?;
        }
        write!(f, ", chain head {}", self.head)?;
        if self.records > 0 && !self.from_genesis {
            write!(f, " (starts mid-chain: earlier files were rotated away)")?;
        }
        Ok(())
    }
}

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
    /// The file ends without a newline.
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
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Break::Malformed(e) => write!(f, "malformed line: {e}"),
            Break::Torn => write!(f, "incomplete last line (no newline)"),
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
        }
    }
}

/// Verifies the chain through `files` (any order; empty files are fine).
pub fn verify(files: &[PathBuf]) -> Result<VerifyReport, VerifyError> {
    let ordered = chain_order(files)?;
    let mut report = VerifyReport {
        files: Vec::new(),
        records: 0,
        first_seq: None,
        last_seq: None,
        head: hex(&GENESIS),
        from_genesis: false,
    };
    // (seq, hash) of the previous line and where it is.
    let mut prev: Option<(u64, [u8; 32], PathBuf, u64)> = None;
    for path in &ordered {
        let mut count = 0u64;
        let mut lines = LineReader::open(path)?;
        while let Some(line) = lines.next_line()? {
            let n = lines.line_no;
            let broken = |problem| VerifyError::Broken {
                path: path.clone(),
                line: n,
                problem,
            };
            if !line.ends_with(b"\n") {
                return Err(broken(Break::Torn));
            }
            let body = &line[..line.len() - 1];
            let (seq, link) = parse_link(body).map_err(|e| broken(Break::Malformed(e)))?;
            match &prev {
                None => {
                    report.first_seq = Some(seq);
                    report.from_genesis = seq == 1 && link == GENESIS;
                }
                Some((pseq, phash, ppath, pline)) => {
                    let expected = pseq.saturating_add(1);
                    if seq > expected {
                        return Err(broken(match find_seq(&ordered, expected)? {
                            Some(at) => Break::Reordered {
                                found: seq,
                                expected,
                                expected_at: Some(at),
                            },
                            None => Break::Deleted {
                                after: *pseq,
                                found: seq,
                            },
                        }));
                    }
                    if seq < expected {
                        let at = find_seq(&ordered, expected)?;
                        return Err(broken(Break::Reordered {
                            found: seq,
                            expected,
                            expected_at: at,
                        }));
                    }
                    if link != *phash {
                        // Editing line k breaks the link k -> k+1; editing
                        // line k's own `prev` breaks k-1 -> k as well. Look
                        // one line ahead to tell which line was touched.
                        let hash: [u8; 32] = Sha256::digest(body).into();
                        let this_one = match lines.next_line()? {
                            Some(next) => parse_link(next.strip_suffix(b"\n").unwrap_or(&next))
                                .map_or(true, |(_, p)| p != hash),
                            None => false,
                        };
                        let (path, line) = if this_one {
                            (path.clone(), n)
                        } else {
                            (ppath.clone(), *pline)
                        };
                        return Err(broken(Break::Edited { path, line }));
                    }
                }
            }
            prev = Some((seq, Sha256::digest(body).into(), path.clone(), n));
            count += 1;
        }
        report.records += count;
        report.files.push((path.clone(), count));
    }
    if let Some((seq, hash, _, _)) = prev {
        report.last_seq = Some(seq);
        report.head = hex(&hash);
    }
    Ok(report)
}

/// Sorts the files by the `seq` of their first record when every
/// non-empty file has one; otherwise keeps the given order (and the walk
/// reports the malformed first line).
fn chain_order(files: &[PathBuf]) -> Result<Vec<PathBuf>, VerifyError> {
    let mut keyed = Vec::with_capacity(files.len());
    let mut sortable = true;
    for path in files {
        let mut lines = LineReader::open(path)?;
        let first = match lines.next_line()? {
            None => Some(0),
            Some(line) => parse_link(line.strip_suffix(b"\n").unwrap_or(&line))
                .ok()
                .map(|(seq, _)| seq),
        };
        sortable &= first.is_some();
        keyed.push((first.unwrap_or(0), path.clone()));
    }
    if sortable {
        keyed.sort_by_key(|(seq, _)| *seq);
    }
    Ok(keyed.into_iter().map(|(_, p)| p).collect())
}

/// Where the record with this `seq` is, if anywhere (second pass, only
/// after a break, to tell a deletion from a move).
fn find_seq(files: &[PathBuf], seq: u64) -> Result<Option<(PathBuf, u64)>, VerifyError> {
    for path in files {
        let mut lines = LineReader::open(path)?;
        while let Some(line) = lines.next_line()? {
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            if matches!(parse_link(body), Ok((s, _)) if s == seq) {
                return Ok(Some((path.clone(), lines.line_no)));
            }
        }
    }
    Ok(None)
}

/// Lines of a file with their newline, numbered from 1.
struct LineReader<'p> {
    path: &'p Path,
    reader: BufReader<File>,
    buf: Vec<u8>,
    line_no: u64,
}

impl<'p> LineReader<'p> {
    fn open(path: &'p Path) -> Result<Self, VerifyError> {
        let file = File::open(path).map_err(|source| VerifyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(LineReader {
            path,
            reader: BufReader::with_capacity(256 * 1024, file),
            buf: Vec::new(),
            line_no: 0,
        })
    }

    fn next_line(&mut self) -> Result<Option<Vec<u8>>, VerifyError> {
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => Ok(None),
            Ok(_) => {
                self.line_no += 1;
                Ok(Some(std::mem::take(&mut self.buf)))
            }
            Err(source) => Err(VerifyError::Io {
                path: self.path.to_path_buf(),
                source,
            }),
        }
    }
}
