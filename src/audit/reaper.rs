//! Deleting rotated-out audit files without stalling requests.
//!
//! Unlinking a 100 MiB file that sits in the page cache takes the kernel
//! ~20 ms in one go, on the thread that asks, and a rename over an existing
//! file is such an unlink. Done by the writer thread at rotation, that was
//! a few milliseconds of added latency for requests sharing its core, every
//! rotation in a directory that has reached `keep` files.
//!
//! So an expired file leaves in two steps. The writer renames it to a
//! hidden name in the same directory (`.audit.jsonl.expired-PID-N`: a
//! rename to a free name, cheap, and invisible to `audit.jsonl*` globs),
//! and a thread of its own shrinks it [`STEP`] bytes at a time with a
//! [`PAUSE`] between steps, then unlinks it. Hidden leftovers of a process
//! that stopped mid-way are picked up when the sink opens.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

/// Bytes freed per step: ~0.2 ms of kernel time for cached pages.
const STEP: u64 = 1 << 20;
/// Rest between steps, so the serving threads get the core back.
const PAUSE: Duration = Duration::from_millis(1);

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Hands expired files to the reaper thread (started on first use).
pub(super) struct Reaper {
    tx: Option<Sender<PathBuf>>,
}

impl Reaper {
    pub(super) fn new() -> Reaper {
        Reaper { tx: None }
    }

    /// Moves `file` out of the way under a hidden name next to `log`
    /// (the configured audit path) and queues it for deletion. A missing
    /// `file` is fine; a failed rename is the caller's error.
    pub(super) fn expire(&mut self, log: &Path, file: &Path) -> io::Result<()> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let doomed = hidden(log, &format!("expired-{}-{n}", std::process::id()));
        match fs::rename(file, &doomed) {
            Ok(()) => {
                self.reap(doomed);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Queues the hidden leftovers of an earlier process for deletion.
    pub(super) fn sweep(&mut self, log: &Path) {
        let (Some(dir), Some(prefix)) = (parent(log), expired_prefix(log)) else {
            return;
        };
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().as_encoded_bytes().starts_with(&prefix) {
                self.reap(entry.path());
            }
        }
    }

    fn reap(&mut self, path: PathBuf) {
        if self.tx.is_none() {
            self.tx = spawn();
        }
        // no thread to be had (or it is gone): delete it here, all at once
        let unsent = match &self.tx {
            Some(tx) => tx.send(path).err().map(|e| e.0),
            None => Some(path),
        };
        if let Some(path) = unsent {
            self.tx = None;
            shrink_and_remove(&path);
        }
    }
}

/// Starts the reaper thread; `None` if the OS will not give one.
fn spawn() -> Option<Sender<PathBuf>> {
    let (tx, rx) = channel::<PathBuf>();
    std::thread::Builder::new()
        .name("regate-audit-reaper".into())
        .spawn(move || {
            for p in rx {
                shrink_and_remove(&p);
            }
        })
        .ok()?;
    Some(tx)
}

/// Frees the file's blocks a step at a time, then unlinks it.
fn shrink_and_remove(path: &Path) {
    if let Ok(f) = OpenOptions::new().write(true).open(path) {
        let mut len = f.metadata().map(|m| m.len()).unwrap_or(0);
        while len > 0 {
            len = len.saturating_sub(STEP);
            if f.set_len(len).is_err() {
                break;
            }
            std::thread::sleep(PAUSE);
        }
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => tracing::warn!(
            target: "regate::audit",
            file = %path.display(),
            error = %e,
            "could not delete an expired audit file"
        ),
        _ => {}
    }
}

fn parent(log: &Path) -> Option<&Path> {
    match log.parent() {
        Some(p) if p.as_os_str().is_empty() => Some(Path::new(".")),
        other => other,
    }
}

/// `.NAME.expired-`, for NAME the audit file's name.
fn expired_prefix(log: &Path) -> Option<Vec<u8>> {
    let name = log.file_name()?;
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(name.as_encoded_bytes());
    prefix.extend_from_slice(b".expired-");
    Some(prefix)
}

/// `DIR/.NAME.SUFFIX` for the audit file `DIR/NAME`.
fn hidden(log: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(log.file_name().unwrap_or_default());
    name.push(".");
    name.push(suffix);
    match parent(log) {
        Some(dir) => dir.join(name),
        None => PathBuf::from(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wait_gone(p: &Path) -> bool {
        let t = Instant::now();
        while p.exists() {
            if t.elapsed() > Duration::from_secs(10) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn expired_files_are_renamed_hidden_then_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        let old = dir.path().join("audit.jsonl.3");
        // a few steps' worth, so the shrinking loop runs more than once
        fs::write(&old, vec![b'x'; (3 * STEP + 10) as usize]).unwrap();
        let mut r = Reaper::new();
        r.expire(&log, &old).unwrap();
        assert!(!old.exists(), "renamed away at once");
        let hidden_left = || {
            fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(".audit.jsonl.expired-")
                })
                .count()
        };
        let t = Instant::now();
        while hidden_left() > 0 {
            assert!(t.elapsed() < Duration::from_secs(10), "never deleted");
            std::thread::sleep(Duration::from_millis(5));
        }
        // nothing to expire is not an error
        r.expire(&log, &old).unwrap();
    }

    #[test]
    fn leftovers_of_an_earlier_process_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.jsonl");
        let leftover = dir.path().join(".audit.jsonl.expired-1-0");
        let unrelated = dir.path().join(".other.jsonl.expired-1-0");
        let rotated = dir.path().join("audit.jsonl.1");
        for p in [&leftover, &unrelated, &rotated] {
            fs::write(p, b"line\n").unwrap();
        }
        let mut r = Reaper::new();
        r.sweep(&log);
        assert!(wait_gone(&leftover));
        assert!(unrelated.exists() && rotated.exists());
    }
}
