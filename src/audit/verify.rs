//! `regate audit verify [--key PUB.pem] [--checkpoints FILE] FILE...`:
//! walks the chain through the given files (put in chain order by their
//! first `seq`, so a shell glob works) and reports the first break: which
//! file, which line, and what happened to it (edited, deleted, reordered,
//! malformed, a checkpoint that is forged, misplaced or missing, a cut
//! tail, swapped rotated files). Checkpoint signatures are checked with
//! the public key; the second sink's checkpoints (`--checkpoints`) are
//! matched against the records they sealed. Reads only; never repairs.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::chain::{parse_link, GENESIS};
use super::forward::Ratchet;
use super::json::hex;
use super::seal::{find_checkpoint, is_checkpoint, parse_checkpoint, SealError, VerifyKey};

/// What to check beyond the chain.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The public key: every checkpoint's signature is checked, and a
    /// trail without any checkpoint fails.
    pub key: Option<VerifyKey>,
    /// The second sink's copy of the checkpoints (`checkpoint_sink`).
    pub checkpoints: Option<PathBuf>,
    /// The forward-secure seed from `audit keygen`: every checkpoint's
    /// MAC is checked, and epochs must follow one another.
    pub seed: Option<[u8; 32]>,
}

/// Records after the last checkpoint: not (yet) sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsealed {
    pub records: u64,
    pub first_seq: u64,
    pub path: PathBuf,
    pub line: u64,
}

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
    /// The key id checkpoints were verified with (`--key`).
    pub key: Option<String>,
    /// Checkpoints found in the trail (signature-checked with a key).
    pub checkpoints: u64,
    /// Records after the last checkpoint.
    pub unsealed: Option<Unsealed>,
    /// A last line without newline (a crash mid-write): file and line.
    pub torn: Option<(PathBuf, u64)>,
    /// `--checkpoints`: (matched against the trail, older than the trail,
    /// made with other keys and skipped).
    pub anchors: Option<(u64, u64, u64)>,
    /// Intent records (`required = true`) with no completion record of the
    /// same id after them: what a crash leaves. (id, seq, file, line).
    pub open_intents: Vec<(String, u64, PathBuf, u64)>,
    /// `--seed`: the last forward-secure epoch verified.
    pub forward_secure: Option<u64>,
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
        match &self.key {
            Some(id) => write!(
                f,
                "\n{} checkpoint(s) signed by key {id} verified",
                self.checkpoints
            )?,
            None => write!(
                f,
                "\nWARNING: no --key: checkpoints ({}) were not checked, and the chain alone cannot detect a file that was edited and re-chained by someone able to write it",
                self.checkpoints
            )?,
        }
        if let Some(e) = self.forward_secure {
            write!(
                f,
                "\nforward-secure MACs verified with the seed through epoch {e}"
            )?;
        }
        if let Some(u) = &self.unsealed {
            write!(
                f,
                "\nUNSEALED: {} record(s) after the last checkpoint, from seq {} ({}, line {}): no signature covers them yet",
                u.records,
                u.first_seq,
                u.path.display(),
                u.line
            )?;
        }
        if !self.open_intents.is_empty() {
            write!(
                f,
                "\nINTENT WITHOUT COMPLETION: {} request(s) were about to be forwarded (or were) with no outcome recorded (a crash?):",
                self.open_intents.len()
            )?;
            for (id, seq, p, l) in self.open_intents.iter().take(20) {
                write!(f, "\n  id {id}: seq {seq} ({}, line {l})", p.display())?;
            }
        }
        if let Some((p, l)) = &self.torn {
            write!(
                f,
                "\nTORN: {}, line {l} is incomplete (the writer stopped mid-write); the records before it verify",
                p.display()
            )?;
        }
        match self.anchors {
            Some((matched, older, other)) => {
                write!(f, "\n{matched} checkpoint(s) of the second sink match the trail")?;
                if older > 0 {
                    write!(f, "; {older} cover records rotated away")?;
                }
                if other > 0 {
                    write!(f, "; {other} of other keys skipped")?;
                }
            }
            None if self.key.is_some() => write!(
                f,
                "\nNOTE: no --checkpoints: a tail cut off at a checkpoint is not detectable from the trail alone"
            )?,
            None => {}
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

/// Verifies the chain through `files` (any order; empty files are fine).
pub fn verify(files: &[PathBuf]) -> Result<VerifyReport, VerifyError> {
    verify_with(files, &VerifyOptions::default())
}

/// A record or checkpoint and where it is.
#[derive(Clone)]
struct Prev {
    seq: u64,
    hash: [u8; 32],
    path: PathBuf,
    line: u64,
}

/// Verifies the chain, the checkpoints and, with `opts.checkpoints`, the
/// second sink's checkpoints against the trail.
pub fn verify_with(files: &[PathBuf], opts: &VerifyOptions) -> Result<VerifyReport, VerifyError> {
    let ordered = chain_order(files)?;
    let anchors = match &opts.checkpoints {
        Some(p) => Some(read_anchors(p, opts.key.as_ref())?),
        None => None,
    };
    let wanted: HashSet<u64> = anchors
        .iter()
        .flat_map(|a| a.list.iter().map(|(cp, _)| cp.seq))
        .collect();
    let mut sealed_in_trail: HashMap<u64, ([u8; 32], PathBuf, u64)> = HashMap::new();
    let mut report = VerifyReport {
        files: Vec::new(),
        records: 0,
        first_seq: None,
        last_seq: None,
        head: hex(&GENESIS),
        from_genesis: false,
        key: opts.key.as_ref().map(|k| k.id().to_string()),
        checkpoints: 0,
        unsealed: None,
        torn: None,
        anchors: None,
        open_intents: Vec::new(),
        forward_secure: None,
    };
    let mut intents: HashMap<String, Vec<(u64, PathBuf, u64)>> = HashMap::new();
    let mut prev: Option<Prev> = None;
    // The last good checkpoint's `every`, and the records since it.
    let mut last_every: Option<u64> = None;
    let mut first_unsealed: Option<(u64, PathBuf, u64)> = None;
    let mut unsealed = 0u64;
    let mut ratchet = opts.seed.map(Ratchet::from_seed);
    let mut last_epoch: Option<u64> = None;
    let last_file = ordered.len().saturating_sub(1);
    'files: for (fi, path) in ordered.iter().enumerate() {
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
                if fi == last_file {
                    report.torn = Some((path.clone(), n));
                    report.files.push((path.clone(), count));
                    report.records += count;
                    break 'files;
                }
                return Err(broken(Break::Torn));
            }
            let body = &line[..line.len() - 1];
            if is_checkpoint(body) {
                let cp = parse_checkpoint(body).map_err(|e| broken(Break::Malformed(e)))?;
                if let Some(key) = &opts.key {
                    key.check(&cp).map_err(|error| {
                        broken(Break::Forged {
                            error,
                            first: first_unsealed.clone(),
                        })
                    })?;
                }
                if let Some(r) = ratchet.as_mut() {
                    let forged = |error| {
                        broken(Break::Forged {
                            error,
                            first: first_unsealed.clone(),
                        })
                    };
                    let Some(epoch) = cp.epoch else {
                        return Err(forged(SealError::BadMac { epoch: None }));
                    };
                    let expected = last_epoch.map_or(r.epoch, |e| e + 1);
                    if epoch != expected && (last_epoch.is_some() || epoch < r.epoch) {
                        return Err(broken(Break::EpochGap {
                            expected,
                            found: epoch,
                        }));
                    }
                    r.advance_to(epoch);
                    if !cp.mac_ok(r) {
                        return Err(forged(SealError::BadMac { epoch: Some(epoch) }));
                    }
                    last_epoch = Some(epoch);
                }
                match &prev {
                    Some(p) if cp.seq != p.seq => {
                        return Err(broken(Break::Misplaced {
                            covers: cp.seq,
                            after: p.seq,
                        }))
                    }
                    Some(p) if cp.head != p.hash => {
                        return Err(broken(Break::Rechained {
                            first: first_unsealed.clone(),
                        }))
                    }
                    _ => {}
                }
                let every = last_every.map_or(cp.every, |e| e.max(cp.every));
                if last_every.is_some() && unsealed > every {
                    if let Some(first) = first_unsealed.clone() {
                        return Err(broken(Break::Unsealed {
                            records: unsealed,
                            every,
                            first,
                        }));
                    }
                }
                if prev.is_none() {
                    prev = Some(Prev {
                        seq: cp.seq,
                        hash: cp.head,
                        path: path.clone(),
                        line: n,
                    });
                }
                report.checkpoints += 1;
                last_every = Some(cp.every);
                unsealed = 0;
                first_unsealed = None;
                continue;
            }
            let (seq, link) = parse_link(body).map_err(|e| broken(Break::Malformed(e)))?;
            match &prev {
                None => {
                    report.first_seq = Some(seq);
                    report.from_genesis = seq == 1 && link == GENESIS;
                }
                Some(p) => {
                    if report.first_seq.is_none() {
                        report.first_seq = Some(seq);
                    }
                    let expected = p.seq.saturating_add(1);
                    if seq > expected {
                        return Err(broken(match find_seq(&ordered, expected)? {
                            Some(at) => Break::Reordered {
                                found: seq,
                                expected,
                                expected_at: Some(at),
                            },
                            None => Break::Deleted {
                                after: p.seq,
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
                    if link != p.hash {
                        // Editing line k breaks the link k -> k+1; editing
                        // line k's own `prev` breaks k-1 -> k as well. Look
                        // one line ahead to tell which line was touched.
                        let hash: [u8; 32] = Sha256::digest(body).into();
                        let this_one = match lines.next_line()? {
                            Some(next) => {
                                let next = next.strip_suffix(b"\n").unwrap_or(&next);
                                if is_checkpoint(next) {
                                    parse_checkpoint(next).map_or(true, |c| c.head != hash)
                                } else {
                                    parse_link(next).map_or(true, |(_, p)| p != hash)
                                }
                            }
                            None => false,
                        };
                        let (path, line) = if this_one {
                            (path.clone(), n)
                        } else {
                            (p.path.clone(), p.line)
                        };
                        return Err(broken(Break::Edited { path, line }));
                    }
                }
            }
            track_intent(body, seq, path, n, &mut intents);
            let hash: [u8; 32] = Sha256::digest(body).into();
            if wanted.contains(&seq) {
                sealed_in_trail.insert(seq, (hash, path.clone(), n));
            }
            prev = Some(Prev {
                seq,
                hash,
                path: path.clone(),
                line: n,
            });
            unsealed += 1;
            first_unsealed.get_or_insert_with(|| (seq, path.clone(), n));
            count += 1;
        }
        report.records += count;
        report.files.push((path.clone(), count));
    }
    if let Some(p) = &prev {
        report.last_seq = Some(p.seq);
        report.head = hex(&p.hash);
    }
    if let Some(first) = first_unsealed {
        if opts.key.is_some() && report.checkpoints == 0 {
            return Err(VerifyError::Broken {
                path: first.1,
                line: first.2,
                problem: Break::NoCheckpoint,
            });
        }
        if let Some(every) = last_every.filter(|e| unsealed > *e) {
            return Err(VerifyError::Broken {
                path: first.1.clone(),
                line: first.2,
                problem: Break::Unsealed {
                    records: unsealed,
                    every,
                    first,
                },
            });
        }
        report.unsealed = Some(Unsealed {
            records: unsealed,
            first_seq: first.0,
            path: first.1,
            line: first.2,
        });
    }
    if let Some(a) = anchors {
        report.anchors = Some(cross_check(&a, &report, &sealed_in_trail)?);
    }
    let mut open: Vec<(String, u64, PathBuf, u64)> = intents
        .into_iter()
        .flat_map(|(id, v)| v.into_iter().map(move |(s, p, l)| (id.clone(), s, p, l)))
        .collect();
    open.sort_by_key(|o| o.1);
    report.open_intents = open;
    report.forward_secure = last_epoch;
    Ok(report)
}

/// Pairs intent records with the completion record of the same id.
/// Parses the id only for intents, and for other records only while an
/// intent is open.
fn track_intent(
    body: &[u8],
    seq: u64,
    path: &Path,
    line: u64,
    open: &mut HashMap<String, Vec<(u64, PathBuf, u64)>>,
) {
    const INTENT: &[u8] = b",\"phase\":\"intent\"}";
    let is_intent = body.ends_with(INTENT);
    if !is_intent && open.is_empty() {
        return;
    }
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    let Ok(Id { id }) = serde_json::from_slice::<Id>(body) else {
        return;
    };
    if is_intent {
        open.entry(id)
            .or_default()
            .push((seq, path.to_path_buf(), line));
    } else if let Some(v) = open.get_mut(&id) {
        v.remove(0);
        if v.is_empty() {
            open.remove(&id);
        }
    }
}

/// The second sink's checkpoints, in file order, with their line numbers.
struct Anchors {
    path: PathBuf,
    list: Vec<(super::seal::Checkpoint, u64)>,
    other_keys: u64,
}

fn read_anchors(path: &Path, key: Option<&VerifyKey>) -> Result<Anchors, VerifyError> {
    let mut lines = LineReader::open(path)?;
    let mut out = Anchors {
        path: path.to_path_buf(),
        list: Vec::new(),
        other_keys: 0,
    };
    while let Some(line) = lines.next_line()? {
        let Some(found) = find_checkpoint(&line) else {
            continue;
        };
        let broken = |problem| VerifyError::Broken {
            path: path.to_path_buf(),
            line: lines.line_no,
            problem,
        };
        let cp = parse_checkpoint(found).map_err(|e| broken(Break::Malformed(e)))?;
        match key.map(|k| k.check(&cp)) {
            // A service log may hold other gateways' checkpoints.
            Some(Err(SealError::OtherKey { .. })) => out.other_keys += 1,
            Some(Err(error)) => return Err(broken(Break::Forged { error, first: None })),
            _ => out.list.push((cp, lines.line_no)),
        }
    }
    Ok(out)
}

/// Every checkpoint of the second sink must seal a record the trail
/// still holds, unchanged (or one rotated away before the first file).
fn cross_check(
    anchors: &Anchors,
    report: &VerifyReport,
    trail: &HashMap<u64, ([u8; 32], PathBuf, u64)>,
) -> Result<(u64, u64, u64), VerifyError> {
    let (first, last) = (report.first_seq.unwrap_or(1), report.last_seq.unwrap_or(0));
    let (mut matched, mut older) = (0, 0);
    let mut sorted: Vec<&(super::seal::Checkpoint, u64)> = anchors.list.iter().collect();
    sorted.sort_by_key(|(cp, _)| cp.seq);
    for (cp, line) in sorted {
        if cp.seq > last {
            return Err(VerifyError::Broken {
                path: anchors.path.clone(),
                line: *line,
                problem: Break::Truncated {
                    ends: last,
                    sealed: cp.seq,
                },
            });
        }
        if cp.seq < first || cp.seq == 0 {
            older += 1;
            continue;
        }
        match trail.get(&cp.seq) {
            Some((hash, _, _)) if *hash == cp.head => matched += 1,
            Some((_, path, at)) => {
                return Err(VerifyError::Broken {
                    path: path.clone(),
                    line: *at,
                    problem: Break::Rewritten {
                        seq: cp.seq,
                        anchor: (anchors.path.clone(), *line),
                    },
                })
            }
            // Only a torn tail stops the walk early; past it nothing is known.
            None => older += 1,
        }
    }
    Ok((matched, older, anchors.other_keys))
}

/// Rotated files (`NAME.1` newest ... `NAME.N` oldest, then `NAME` live)
/// must hold their records in that order.
fn check_file_order(ordered: &[&PathBuf]) -> Result<(), VerifyError> {
    let mut last: HashMap<String, (u64, &PathBuf)> = HashMap::new();
    for path in ordered {
        let name = path.to_string_lossy();
        let (base, idx) = match name.rsplit_once('.') {
            Some((b, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => {
                (b.to_string(), n.parse::<u64>().unwrap_or(u64::MAX))
            }
            _ => (name.to_string(), 0),
        };
        // Rotation numbers count down towards the live file (0).
        if let Some((prev_idx, prev_path)) = last.get(&base) {
            if idx >= *prev_idx {
                return Err(VerifyError::Broken {
                    path: (*path).clone(),
                    line: 1,
                    problem: Break::FileOrder {
                        older: (*prev_path).clone(),
                    },
                });
            }
        }
        last.insert(base, (idx, path));
    }
    Ok(())
}

/// Sorts the files by the `seq` of their first record (or first
/// checkpoint) when every non-empty file has one; otherwise keeps the
/// given order (and the walk reports the malformed first line). Checks
/// that rotated files' names agree with that order.
fn chain_order(files: &[PathBuf]) -> Result<Vec<PathBuf>, VerifyError> {
    let mut keyed = Vec::with_capacity(files.len());
    let mut sortable = true;
    for path in files {
        let mut lines = LineReader::open(path)?;
        let first = match lines.next_line()? {
            None => Some(0),
            Some(line) => {
                let body = line.strip_suffix(b"\n").unwrap_or(&line);
                if is_checkpoint(body) {
                    parse_checkpoint(body).ok().map(|c| c.seq)
                } else {
                    parse_link(body).ok().map(|(seq, _)| seq)
                }
            }
        };
        sortable &= first.is_some();
        keyed.push((first.unwrap_or(0), path.clone()));
    }
    if sortable {
        keyed.sort_by_key(|(seq, _)| *seq);
        let non_empty: Vec<&PathBuf> = keyed
            .iter()
            .filter(|(seq, _)| *seq > 0)
            .map(|(_, p)| p)
            .collect();
        check_file_order(&non_empty)?;
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
