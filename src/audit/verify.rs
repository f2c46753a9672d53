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
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use super::breaks::{Break, VerifyError};
use super::chain::{parse_link, GENESIS};
use super::crosscheck::{cross_check, read_anchors};
use super::forward::Ratchet;
use super::json::hex;
use super::seal::{is_checkpoint, parse_checkpoint, SealError, VerifyKey};
use super::verify_files::{chain_order, find_seq, LineReader};

/// What to check beyond the chain.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The public key(s): every checkpoint's signature is checked, and a
    /// trail without any checkpoint fails. Several after a key rotation.
    pub keys: Vec<VerifyKey>,
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
        Some(p) => Some(read_anchors(p, &opts.keys, opts.seed)?),
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
        key: (!opts.keys.is_empty()).then(|| {
            let ids: Vec<&str> = opts.keys.iter().map(VerifyKey::id).collect();
            ids.join(", ")
        }),
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
                if !opts.keys.is_empty() {
                    VerifyKey::check_any(&opts.keys, &cp).map_err(|error| {
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
        if !opts.keys.is_empty() && report.checkpoints == 0 {
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
