//! `audit verify --checkpoints`: reads the second sink's copies of the
//! checkpoints (from a file, a journald export or a syslog capture) and
//! matches each against the record it sealed, which finds a cut tail and a
//! trail rewritten up to a shipped checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::breaks::{Break, VerifyError};
use super::forward::Ratchet;
use super::seal::{find_checkpoint, parse_checkpoint, Checkpoint, SealError, VerifyKey};
use super::verify::VerifyReport;
use super::verify_files::LineReader;

/// The second sink's checkpoints, in file order, with their line numbers.
pub(super) struct Anchors {
    path: PathBuf,
    pub(super) list: Vec<(Checkpoint, u64)>,
    other_keys: u64,
}

pub(super) fn read_anchors(
    path: &Path,
    keys: &[VerifyKey],
    seed: Option<[u8; 32]>,
) -> Result<Anchors, VerifyError> {
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
        match (!keys.is_empty()).then(|| VerifyKey::check_any(keys, &cp)) {
            // A service log may hold other gateways' checkpoints.
            Some(Err(SealError::OtherKey { .. })) => out.other_keys += 1,
            Some(Err(error)) => return Err(broken(Break::Forged { error, first: None })),
            _ => out.list.push((cp, lines.line_no)),
        }
    }
    if let Some(seed) = seed {
        check_macs(&mut out, seed)?;
    }
    Ok(out)
}

/// `--seed`: every copy must carry the forward-secure MAC of its epoch
/// (one ratchet walked up through the epochs in order).
fn check_macs(anchors: &mut Anchors, seed: [u8; 32]) -> Result<(), VerifyError> {
    anchors.list.sort_by_key(|(cp, _)| cp.epoch);
    let mut r = Ratchet::from_seed(seed);
    for (cp, line) in &anchors.list {
        let bad = match cp.epoch {
            None => Some(SealError::BadMac { epoch: None }),
            Some(e) => {
                r.advance_to(e);
                (!cp.mac_ok(&r)).then_some(SealError::BadMac { epoch: Some(e) })
            }
        };
        if let Some(error) = bad {
            return Err(VerifyError::Broken {
                path: anchors.path.clone(),
                line: *line,
                problem: Break::Forged { error, first: None },
            });
        }
    }
    Ok(())
}

/// Every checkpoint of the second sink must seal a record the trail
/// still holds, unchanged (or one rotated away before the first file).
pub(super) fn cross_check(
    anchors: &Anchors,
    report: &VerifyReport,
    trail: &HashMap<u64, ([u8; 32], PathBuf, u64)>,
) -> Result<(u64, u64, u64), VerifyError> {
    let (first, last) = (report.first_seq.unwrap_or(1), report.last_seq.unwrap_or(0));
    let (mut matched, mut older) = (0, 0);
    let mut sorted: Vec<&(Checkpoint, u64)> = anchors.list.iter().collect();
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
