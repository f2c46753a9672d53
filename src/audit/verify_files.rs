//! The files `audit verify` reads: lines numbered from 1 ([`LineReader`]),
//! the files put in chain order by their first `seq` (so a shell glob
//! works), rotated names checked against that order, and the second pass
//! that tells a deleted record from a moved one.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::breaks::{Break, VerifyError};
use super::chain::parse_link;
use super::seal::{is_checkpoint, parse_checkpoint};

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
pub(super) fn chain_order(files: &[PathBuf]) -> Result<Vec<PathBuf>, VerifyError> {
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
pub(super) fn find_seq(files: &[PathBuf], seq: u64) -> Result<Option<(PathBuf, u64)>, VerifyError> {
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
pub(super) struct LineReader<'p> {
    path: &'p Path,
    reader: BufReader<File>,
    buf: Vec<u8>,
    pub(super) line_no: u64,
}

impl<'p> LineReader<'p> {
    pub(super) fn open(path: &'p Path) -> Result<Self, VerifyError> {
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

    pub(super) fn next_line(&mut self) -> Result<Option<Vec<u8>>, VerifyError> {
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
