//! Where audit lines end up: an append-only file with size-based rotation
//! (`audit.jsonl` -> `audit.jsonl.1` -> ... -> `.keep`) or standard output.
//! Owns file handles, sizes and renames; knows nothing about records or
//! the chain (whole lines come in, whole lines go out). Used only from the
//! writer thread, so nothing here locks.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::config::SinkSettings;
use super::reaper::Reaper;

/// The page size the cache advice rounds to.
const PAGE: u64 = 4096;
/// How much is written between two hand-overs to writeback.
const PACE_BYTES: u64 = 512 * 1024;

/// Advises the kernel that `[from, to)` will not be read again: dirty
/// pages in it start their writeback now (without waiting for it), clean
/// whole pages leave the page cache. Advice only: a failure changes
/// nothing that matters, durability comes from `sync`.
fn advise_out(file: &File, from: u64, to: u64) {
    if let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(from)) {
        let _ = rustix::fs::fadvise(file, from, Some(len), rustix::fs::Advice::DontNeed);
    }
}

/// Takes the exclusive `flock` that makes this process the file's only
/// writer: a second regate on the same path gets an error naming the path
/// and, when `/proc/locks` tells, the process holding it.
fn lock_exclusive(file: &File, path: &Path) -> io::Result<()> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let holder = file
                .metadata()
                .ok()
                .and_then(|m| lock_holder(m.ino()))
                .map_or(String::new(), |pid| format!(" (pid {pid})"));
            Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "audit file {} is locked by another process{holder}: one regate writes one trail; give each its own [audit] path",
                    path.display()
                ),
            ))
        }
        Err(e) => Err(io::Error::other(format!(
            "audit file {}: cannot lock: {e}",
            path.display()
        ))),
    }
}

/// The pid holding a `flock` on inode `ino`, from `/proc/locks` (Linux).
fn lock_holder(ino: u64) -> Option<u32> {
    let locks = fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let inode = f.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
        (f.get(1) == Some(&"FLOCK") && inode == ino).then(|| f.get(4)?.parse().ok())?
    })
}

/// `<path>.<n>`: the n-th rotated file, 1 the newest.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// An open sink.
pub enum Sink {
    File(FileSink),
    Stdout,
}

impl Sink {
    /// Opens (creating if needed) the configured sink.
    pub fn open(settings: &SinkSettings) -> io::Result<Sink> {
        match settings {
            SinkSettings::Stdout => Ok(Sink::Stdout),
            SinkSettings::File {
                path,
                max_bytes,
                keep,
            } => {
                let mut sink = FileSink {
                    path: path.clone(),
                    max_bytes: *max_bytes,
                    keep: *keep,
                    file: None,
                    size: 0,
                    uncached: 0,
                    paced: 0,
                    drop_from: 0,
                    ident: (0, 0),
                    reaper: Reaper::new(),
                };
                sink.open_file()?;
                sink.reaper.sweep(path);
                Ok(Sink::File(sink))
            }
        }
    }

    /// Makes sure the handle still is the file at the configured path
    /// (it may have been renamed by logrotate, deleted, or its directory
    /// removed) and reopens it if not. An error means nothing can be
    /// written now.
    pub fn ensure_current(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => Ok(()),
            Sink::File(f) => f.ensure_current(),
        }
    }

    /// False when the open file is no longer the one at the configured
    /// path (renamed by logrotate, deleted) and the next write would
    /// switch files.
    pub fn is_current(&self) -> bool {
        match self {
            Sink::Stdout => true,
            Sink::File(f) => {
                f.file.is_some()
                    && fs::metadata(&f.path).is_ok_and(|m| (m.dev(), m.ino()) == f.ident)
            }
        }
    }

    /// True when `pending` more bytes would push the file past
    /// `max_bytes` and there is something to rotate away (a line longer
    /// than `max_bytes` still gets a file of its own).
    pub fn should_rotate(&self, before: usize, pending: usize) -> bool {
        match self {
            Sink::Stdout => false,
            Sink::File(f) => (f.size > 0 || before > 0) && f.size + pending as u64 > f.max_bytes,
        }
    }

    /// Appends whole lines. On error the file is cut back to its length
    /// before the call (best effort), so no torn line is left behind.
    pub fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(lines)?;
                out.flush()
            }
            Sink::File(f) => f.write(lines),
        }
    }

    /// New rotation limits (a reload); they apply from the next write.
    pub fn set_limits(&mut self, max_bytes: u64, keep: u32) {
        if let Sink::File(f) = self {
            f.max_bytes = max_bytes;
            f.keep = keep;
        }
    }

    /// Re-reads the file's size (after `recover` cut a torn tail).
    pub fn refresh(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => Ok(()),
            Sink::File(f) => {
                if let Some(file) = &f.file {
                    f.size = file.metadata()?.len();
                    f.paced = f.size;
                    f.drop_from = f.size;
                }
                Ok(())
            }
        }
    }

    /// Flushes written lines to stable storage.
    pub fn sync(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => Ok(()),
            Sink::File(f) => f.sync(),
        }
    }

    /// Syncs and closes the current file, shifts the rotated ones and
    /// starts a new, empty file.
    pub fn rotate(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => Ok(()),
            Sink::File(f) => f.rotate(),
        }
    }

    /// Closes and reopens the path (SIGHUP after an external rotation).
    pub fn reopen(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => Ok(()),
            Sink::File(f) => {
                if let Some(file) = f.file.take() {
                    // Whatever was written to the old inode should be durable.
                    let _ = file.sync_data();
                }
                f.open_file()
            }
        }
    }
}

/// The file sink's state.
pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<File>,
    size: u64,
    /// Below this offset the file's pages were durable and dropped from
    /// the page cache (at the last sync).
    uncached: u64,
    /// The file size when pages were last handed to writeback: pages
    /// from here on may be dirty.
    paced: u64,
    /// Where the range handed to writeback at the last hand-over starts:
    /// the next one drops it from the cache.
    drop_from: u64,
    /// (device, inode) of the open file, to notice renames and deletions.
    ident: (u64, u64),
    /// Deletes rotated-out files off this thread.
    reaper: Reaper,
}

impl FileSink {
    fn open_file(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&self.path)?;
        lock_exclusive(&file, &self.path)?;
        let meta = file.metadata()?;
        self.size = meta.len();
        self.uncached = 0;
        self.paced = self.size;
        self.drop_from = self.size;
        self.ident = (meta.dev(), meta.ino());
        self.file = Some(file);
        Ok(())
    }

    fn ensure_current(&mut self) -> io::Result<()> {
        let same = match fs::metadata(&self.path) {
            Ok(m) => self.file.is_some() && (m.dev(), m.ino()) == self.ident,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if !same {
            if let Some(old) = self.file.take() {
                let _ = old.sync_data();
            }
            self.open_file()?;
        }
        Ok(())
    }

    /// Makes what was written durable, then lets the kernel drop those
    /// pages from its cache: nothing here reads them back, and an audit
    /// trail of tens of MB a minute would otherwise push useful pages out
    /// of memory (and make every new page a fresh allocation).
    fn sync(&mut self) -> io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        file.sync_data()?;
        advise_out(file, self.uncached, self.size);
        // The partial last page stays cached (the kernel keeps it); it is
        // dropped with the next range.
        self.uncached = self.size - self.size % PAGE;
        Ok(())
    }

    /// Spreads the page-cache work over the writes instead of leaving it
    /// all to the next sync: every [`PACE_BYTES`] written (every ~15 ms at
    /// 50k requests/s), the pages written since the last hand-over start
    /// their writeback, and the ones handed over the time before (clean
    /// by now) leave the cache. Left to `sync`, writing back and dropping
    /// a second of audit trail (~30 MB at 50k requests/s) took 1.5-4 ms
    /// of kernel time in one go, on the core that serves requests. At low
    /// rates this never triggers and `sync` does it all, as cheaply.
    fn pace(&mut self) {
        if self.size.saturating_sub(self.paced) < PACE_BYTES {
            return;
        }
        if let Some(file) = &self.file {
            advise_out(file, self.drop_from.max(self.uncached), self.size);
        }
        self.drop_from = self.paced - self.paced % PAGE;
        self.paced = self.size;
    }

    fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "audit file not open",
            ));
        };
        match file.write_all(lines) {
            Ok(()) => {
                self.size += lines.len() as u64;
                self.pace();
                Ok(())
            }
            Err(e) => {
                // A partial write would leave a torn line that the next
                // record would be glued to; cut it back.
                let _ = file.set_len(self.size);
                Err(e)
            }
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        // The next file's first record links to this file's last one:
        // make that one durable before the rename.
        let synced = self.sync();
        self.file = None;
        synced?;
        // Files that leave are renamed to hidden names and deleted by the
        // reaper: an unlink here (a rename over the oldest file is one)
        // would stall this thread, and its core, for ~20 ms per 100 MiB.
        if self.keep == 0 {
            self.reaper.expire(&self.path, &self.path)?;
        } else {
            // Left over from a larger `keep` before a config change.
            let _ = self
                .reaper
                .expire(&self.path, &rotated_path(&self.path, self.keep + 1));
            self.reaper
                .expire(&self.path, &rotated_path(&self.path, self.keep))?;
            for n in (1..self.keep).rev() {
                match fs::rename(rotated_path(&self.path, n), rotated_path(&self.path, n + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            fs::rename(&self.path, rotated_path(&self.path, 1))?;
        }
        if let Some(dir) = self.path.parent() {
            // Make the renames durable; not every filesystem allows it.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.open_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_sink(path: &Path, max_bytes: u64, keep: u32) -> Sink {
        Sink::open(&SinkSettings::File {
            path: path.to_path_buf(),
            max_bytes,
            keep,
        })
        .unwrap()
    }

    #[test]
    fn rotation_shifts_and_keeps_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut sink = file_sink(&path, 10, 2);
        for i in 0..4 {
            sink.write(format!("line{i}\n").as_bytes()).unwrap();
            sink.rotate().unwrap();
        }
        let read = |p: PathBuf| fs::read_to_string(p).unwrap();
        assert_eq!(read(path.clone()), "");
        assert_eq!(read(rotated_path(&path, 1)), "line3\n");
        assert_eq!(read(rotated_path(&path, 2)), "line2\n");
        assert!(!rotated_path(&path, 3).exists());
        // the rotated-out files are deleted by the reaper thread
        let t = std::time::Instant::now();
        while fs::read_dir(dir.path()).unwrap().count() > 3 {
            assert!(t.elapsed().as_secs() < 10, "expired files never deleted");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn paced_writes_lose_nothing() {
        // Several hand-overs to writeback (and cache drops) per file, a
        // rotation in between: every byte reads back, in order.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut sink = file_sink(&path, 1 << 30, 1);
        let chunk = |i: usize| {
            let mut c = vec![b'a' + i as u8; 150_000];
            c[149_999] = b'\n';
            c
        };
        let mut want = Vec::new();
        for i in 0..24 {
            if i == 12 {
                sink.rotate().unwrap();
                want.clear();
            }
            sink.write(&chunk(i)).unwrap();
            want.extend_from_slice(&chunk(i));
        }
        sink.sync().unwrap();
        assert!(want.len() as u64 > 3 * PACE_BYTES);
        assert!(fs::read(&path).unwrap() == want);
        let first: Vec<u8> = (0..12).flat_map(chunk).collect();
        assert!(fs::read(rotated_path(&path, 1)).unwrap() == first);
    }

    #[test]
    fn notices_a_renamed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut sink = file_sink(&path, 1 << 20, 1);
        sink.write(b"one\n").unwrap();
        fs::rename(&path, dir.path().join("moved")).unwrap();
        sink.ensure_current().unwrap();
        sink.write(b"two\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
    }
}
