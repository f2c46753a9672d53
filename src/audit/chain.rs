//! The hash chain that makes the audit trail tamper-evident: composing a
//! line around a record's fields ([`ChainHead::append_line`]), reading one
//! back ([`parse_link`]) and recovering the head from the files already on
//! disk when the log is opened ([`recover`]). The definition lives in the
//! module doc of [`crate::audit`].

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::json::{write_hex, write_u64};
use super::seal::{is_checkpoint, parse_checkpoint};
use super::sink::rotated_path;

/// `prev` of the very first record: 32 zero bytes (64 `0` in hex).
pub const GENESIS: [u8; 32] = [0; 32];

/// The longest last line [`recover`] will look back for.
const MAX_LINE_LOOKBACK: u64 = 16 << 20;

/// The end of the chain: the last record written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// `seq` of the last record; 0 before the first.
    pub seq: u64,
    /// SHA-256 of the last line (without its newline); [`GENESIS`] before the first.
    pub hash: [u8; 32],
}

impl ChainHead {
    /// The head of an empty trail.
    pub fn genesis() -> Self {
        ChainHead {
            seq: 0,
            hash: GENESIS,
        }
    }

    /// Appends `{"seq":N,"prev":"<hex>",` + `fields` + `\n` to `out` and
    /// advances the head to that line. `fields` is the output of
    /// `AuditRecord::encode_fields` (it ends with the closing brace).
    pub fn append_line(&mut self, fields: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let seq = self.seq.saturating_add(1);
        out.extend_from_slice(b"{\"seq\":");
        write_u64(out, seq);
        out.extend_from_slice(b",\"prev\":\"");
        write_hex(out, &self.hash);
        out.extend_from_slice(b"\",");
        out.extend_from_slice(fields);
        self.hash = Sha256::digest(&out[start..]).into();
        self.seq = seq;
        out.push(b'\n');
    }

    /// The head a line leaves behind: its `seq` and its hash.
    pub fn of_line(line: &[u8]) -> Result<ChainHead, String> {
        let (seq, _) = parse_link(line)?;
        Ok(ChainHead {
            seq,
            hash: Sha256::digest(line).into(),
        })
    }
}

#[derive(Deserialize)]
struct Link<'a> {
    seq: u64,
    #[serde(borrow)]
    prev: &'a str,
}

/// Parses a line (without newline) as a JSON object and returns its
/// `seq` and `prev`. Fails on anything that is not valid JSON or lacks them.
pub fn parse_link(line: &[u8]) -> Result<(u64, [u8; 32]), String> {
    let link: Link<'_> =
        serde_json::from_slice(line).map_err(|e| format!("not a valid record: {e}"))?;
    let prev = parse_hex32(link.prev).ok_or("`prev` is not 64 hex digits")?;
    Ok((link.seq, prev))
}

pub(crate) fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Recovers the head from the live file, or from `<path>.1` when the live
/// file is empty or missing (a rotation just before a restart). A torn
/// last line in the live file (a crash mid-write: no final newline) is cut
/// off, with a warning, so the next record continues the chain from the
/// last complete one. A complete last line that is not a record is an
/// error naming the file: move the file aside rather than break the chain.
pub fn recover(path: &Path) -> io::Result<ChainHead> {
    recover_sealed(path).map(|(head, _)| head)
}

/// [`recover`], and whether the trail ends with a checkpoint (a signed
/// one covering the head: nothing to seal at start).
pub fn recover_sealed(path: &Path) -> io::Result<(ChainHead, bool)> {
    if let Some(found) = head_of(path, true)? {
        return Ok(found);
    }
    if let Some(found) = head_of(&rotated_path(path, 1), false)? {
        return Ok(found);
    }
    Ok((ChainHead::genesis(), false))
}

fn head_of(path: &Path, cut_torn: bool) -> io::Result<Option<(ChainHead, bool)>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() == 0 {
        return Ok(None);
    }
    let tail = last_line(&mut file, meta.len())?;
    if tail.complete_len < meta.len() {
        let torn = meta.len() - tail.complete_len;
        if !cut_torn {
            return Err(invalid(path, "ends with an incomplete line"));
        }
        tracing::warn!(
            target: "regate::audit",
            file = %path.display(),
            bytes = torn,
            "audit log ends with an incomplete line (crash mid-write?); cutting it off"
        );
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(tail.complete_len)?;
    }
    let found = match tail.line {
        None => return Ok(None),
        Some(line) if is_checkpoint(&line) => {
            parse_checkpoint(&line).map(|cp| (cp.chain_head(), true))
        }
        Some(line) => ChainHead::of_line(&line).map(|h| (h, false)),
    };
    found
        .map(Some)
        .map_err(|e| invalid(path, &format!("last line: {e}")))
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("audit log {}: {what}", path.display()),
    )
}

struct Tail {
    /// The last newline-terminated line, without the newline.
    line: Option<Vec<u8>>,
    /// Length of the file up to and including that newline.
    complete_len: u64,
}

/// Reads backwards from the end, in growing windows, until the last
/// complete line and its start are both in view.
fn last_line(file: &mut File, len: u64) -> io::Result<Tail> {
    let mut window = len.min(64 * 1024);
    loop {
        let start = len - window;
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity(window as usize);
        file.by_ref().take(window).read_to_end(&mut buf)?;
        let whole = start == 0;
        let end = match buf.iter().rposition(|&b| b == b'\n') {
            Some(p) => p,
            None if whole => {
                return Ok(Tail {
                    line: None,
                    complete_len: 0,
                })
            }
            None => {
                window = grow(window, len)?;
                continue;
            }
        };
        let line_start = match buf[..end].iter().rposition(|&b| b == b'\n') {
            Some(q) => q + 1,
            None if whole => 0,
            None => {
                window = grow(window, len)?;
                continue;
            }
        };
        return Ok(Tail {
            line: Some(buf[line_start..end].to_vec()),
            complete_len: start + end as u64 + 1,
        });
    }
}

fn grow(window: u64, len: u64) -> io::Result<u64> {
    if window >= MAX_LINE_LOOKBACK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "audit log: last line longer than 16 MiB",
        ));
    }
    Ok((window * 4).min(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_link_to_their_predecessor() {
        let mut head = ChainHead::genesis();
        let mut out = Vec::new();
        head.append_line(b"\"a\":1}", &mut out);
        let first = out.clone();
        head.append_line(b"\"a\":2}", &mut out);
        let lines: Vec<&[u8]> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(parse_link(lines[0]).unwrap(), (1, GENESIS));
        let h1: [u8; 32] = Sha256::digest(&first[..first.len() - 1]).into();
        assert_eq!(parse_link(lines[1]).unwrap(), (2, h1));
        assert_eq!(ChainHead::of_line(lines[1]).unwrap(), head);
    }

    #[test]
    fn recover_cuts_a_torn_tail_and_falls_back_to_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        assert_eq!(recover(&path).unwrap(), ChainHead::genesis());
        let mut head = ChainHead::genesis();
        let mut out = Vec::new();
        head.append_line(b"\"x\":1}", &mut out);
        head.append_line(b"\"x\":2}", &mut out);
        let good = out.len() as u64;
        out.extend_from_slice(b"{\"seq\":3,\"pr");
        std::fs::write(&path, &out).unwrap();
        assert_eq!(recover(&path).unwrap(), head);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        std::fs::rename(&path, rotated_path(&path, 1)).unwrap();
        std::fs::write(&path, b"").unwrap();
        assert_eq!(recover(&path).unwrap(), head);
        std::fs::write(&path, b"not json\n").unwrap();
        assert!(recover(&path).is_err());
    }

    #[test]
    fn long_last_line_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut head = ChainHead::genesis();
        let mut out = Vec::new();
        head.append_line(b"\"x\":1}", &mut out);
        let big = format!("\"x\":\"{}\"}}", "y".repeat(300_000));
        head.append_line(big.as_bytes(), &mut out);
        std::fs::write(&path, &out).unwrap();
        assert_eq!(recover(&path).unwrap(), head);
    }
}
