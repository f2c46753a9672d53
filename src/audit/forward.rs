//! Forward-secure sealing (`[audit] forward_secure = true`), in the manner
//! of Schneier-Kelsey and journald's FSS: besides its Ed25519 signature,
//! each checkpoint carries `epoch` and an HMAC-SHA-256 `mac` made with the
//! epoch's key; after every checkpoint the key is replaced by
//! `SHA-256("regate audit fss evolve" || key)` and the old one overwritten
//! on disk. The seed (epoch 0's key) is printed once by `audit keygen` for
//! the auditor to keep offline: from it `verify --seed` derives every
//! epoch's key. A key stolen from the gateway at epoch n cannot make the
//! MAC of any epoch before n, so checkpoints already written cannot be
//! re-made. Owns the ratchet and its state file; nothing else.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac as _};
use sha2::{Digest, Sha256};

use super::chain::parse_hex32;
use super::json::hex;

const EVOLVE: &[u8] = b"regate audit fss evolve";

/// An epoch and its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Ratchet {
    pub epoch: u64,
    key: [u8; 32],
}

impl std::fmt::Debug for Ratchet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ratchet")
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Ratchet {
    /// Epoch 0: the seed itself.
    pub fn from_seed(seed: [u8; 32]) -> Ratchet {
        Ratchet {
            epoch: 0,
            key: seed,
        }
    }

    /// Moves to the next epoch; the old key is gone from this value.
    pub fn advance(&mut self) {
        let mut h = Sha256::new();
        h.update(EVOLVE);
        h.update(self.key);
        self.key = h.finalize().into();
        self.epoch += 1;
    }

    /// Advances until `epoch` (never back).
    pub fn advance_to(&mut self, epoch: u64) {
        while self.epoch < epoch {
            self.advance();
        }
    }

    /// The MAC of `msg` under this epoch's key.
    pub fn mac(&self, msg: &[u8]) -> [u8; 32] {
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(m) => m,
            // HMAC takes a key of any length: unreachable, but never panic
            Err(_) => return [0; 32],
        };
        m.update(msg);
        m.finalize().into_bytes().into()
    }
}

/// Where the evolving key is kept: next to `signing_key`, with the
/// extension `fss` (`audit-signing.key` -> `audit-signing.fss`).
pub fn state_path(signing_key: &Path) -> PathBuf {
    signing_key.with_extension("fss")
}

/// Parses a 64-hex-digit seed (`verify --seed`).
pub fn parse_seed(text: &str) -> Option<[u8; 32]> {
    parse_hex32(text.trim())
}

/// Reads the state file: `epoch N` and `key HEX` lines.
pub fn load(path: &Path) -> Result<Ratchet, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(str::trim))
            .ok_or_else(|| format!("{}: no `{}` line", path.display(), name.trim()))
    };
    let epoch = field("epoch ")?
        .parse()
        .map_err(|_| format!("{}: `epoch` is not a number", path.display()))?;
    let key = parse_hex32(field("key ")?)
        .ok_or_else(|| format!("{}: `key` is not 64 hex digits", path.display()))?;
    Ok(Ratchet { epoch, key })
}

/// Replaces the state file (write, sync, rename, sync the directory): a
/// crash leaves either the old epoch or the new one, whole.
pub fn save(path: &Path, r: &Ratchet) -> io::Result<()> {
    let tmp = path.with_extension("fss.tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(format!("epoch {}\nkey {}\n", r.epoch, hex(&r.key)).as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// A fresh seed, saved as epoch 0 at `path` (never overwritten); returns
/// the seed as hex for the auditor.
pub fn create(path: &Path) -> io::Result<String> {
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| io::Error::other("the system random generator failed"))?;
    if path.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{}: exists", path.display()),
        ));
    }
    save(path, &Ratchet::from_seed(seed))?;
    Ok(hex(&seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_reaches_every_epoch_and_a_later_key_no_earlier_one() {
        let mut r = Ratchet::from_seed([9; 32]);
        let m0 = r.mac(b"x");
        r.advance();
        r.advance();
        let m2 = r.mac(b"x");
        assert_ne!(m0, m2);
        let mut again = Ratchet::from_seed([9; 32]);
        again.advance_to(2);
        assert_eq!(again.mac(b"x"), m2);
        assert_eq!(again, r);
    }

    #[test]
    fn state_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.fss");
        let seed = create(&p).unwrap();
        assert!(create(&p).is_err());
        let mut r = load(&p).unwrap();
        assert_eq!(r, Ratchet::from_seed(parse_seed(&seed).unwrap()));
        r.advance();
        save(&p, &r).unwrap();
        assert_eq!(load(&p).unwrap().epoch, 1);
    }
}
