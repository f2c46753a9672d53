//! Signed checkpoints: the Ed25519 key that seals the chain
//! ([`Sealer`], `[audit] signing_key`), the checkpoint line it writes, and
//! the public half that checks one ([`VerifyKey`], `audit verify --key`).
//! Also `regate audit keygen` ([`keygen`]). Knows nothing of files or
//! queues: the writer thread calls [`Sealer::seal`], `verify` calls
//! [`VerifyKey::check`].
//!
//! # Checkpoint line
//!
//! ```text
//! {"checkpoint":1000,"head":"<64 hex>","time":"2026-...Z","key":"<16 hex>","every":1000,"sig":"<base64>"}
//! ```
//!
//! `checkpoint` is the `seq` of the last record it covers and `head` that
//! record's chain hash (so it commits to the whole history before it);
//! `key` is the key id (the first 8 bytes of SHA-256 of the public key);
//! `every` is `checkpoint_records` when it was written (verify allows at
//! most that many records between two checkpoints). The signature covers
//! [`DOMAIN`] followed by the line up to, not including, `,"sig":`.
//! Checkpoint lines are not part of the chain: they have no `seq`.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::chain::{parse_hex32, ChainHead};
use super::forward::Ratchet;
use super::json::{hex, write_hex, write_u64};
use super::time::write_rfc3339_micros;

/// Prefix of every signed message, so a checkpoint signature can never be
/// taken for a signature over anything else made with the same key.
pub const DOMAIN: &[u8] = b"regate audit checkpoint v1\n";

/// How every checkpoint line starts (and records never do).
pub const PREFIX: &[u8] = b"{\"checkpoint\":";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the raw
/// 32-byte key follows.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// True when the line (with or without newline) is a checkpoint.
pub fn is_checkpoint(line: &[u8]) -> bool {
    line.starts_with(PREFIX)
}

/// The key id: hex of the first 8 bytes of SHA-256 of the raw public key.
pub fn key_id(public: &[u8]) -> String {
    hex(&Sha256::digest(public)[..8])
}

/// The private key of `[audit] signing_key`. `Debug` shows the key id only.
pub struct Sealer {
    pair: Ed25519KeyPair,
    id: String,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("key_id", &self.id).finish()
    }
}

impl PartialEq for Sealer {
    fn eq(&self, other: &Self) -> bool {
        self.pair.public_key().as_ref() == other.pair.public_key().as_ref()
    }
}

impl Eq for Sealer {}

impl Sealer {
    /// Reads an Ed25519 private key in PKCS#8 PEM (`PRIVATE KEY`; v1 as
    /// written by `openssl genpkey -algorithm ed25519`, or v2 as written
    /// by `regate audit keygen`). The error never contains key material.
    pub fn load(path: &Path) -> Result<Sealer, String> {
        let der = PrivatePkcs8KeyDer::from_pem_file(path)
            .map_err(|e| format!("{}: no PKCS#8 private key ({e})", path.display()))?;
        Sealer::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// From PKCS#8 DER bytes.
    pub fn from_pkcs8(der: &[u8]) -> Result<Sealer, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| format!("not an Ed25519 key ({e})"))?;
        let id = key_id(pair.public_key().as_ref());
        Ok(Sealer { pair, id })
    }

    /// A fresh key (tests, benches).
    pub fn generate() -> Result<(Sealer, Vec<u8>), String> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| "the system random generator failed".to_string())?;
        let der = doc.as_ref().to_vec();
        Ok((Sealer::from_pkcs8(&der)?, der))
    }

    /// The key id written in every checkpoint.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The public half, for `audit verify --key`.
    pub fn verify_key(&self) -> VerifyKey {
        VerifyKey::from_raw(self.pair.public_key().as_ref())
    }

    /// Appends a signed checkpoint line (with its newline) covering `head`.
    pub fn seal(&self, head: &ChainHead, every: u64, time: SystemTime, out: &mut Vec<u8>) {
        self.seal_forward(head, every, time, None, out)
    }

    /// [`Sealer::seal`], plus `epoch` and the MAC of the forward-secure
    /// key when `fss` is given (the caller then advances it).
    pub fn seal_forward(
        &self,
        head: &ChainHead,
        every: u64,
        time: SystemTime,
        fss: Option<&Ratchet>,
        out: &mut Vec<u8>,
    ) {
        let start = out.len();
        write_unsigned(head.seq, &head.hash, time, &self.id, every, out);
        if let Some(r) = fss {
            out.extend_from_slice(b",\"epoch\":");
            write_u64(out, r.epoch);
        }
        let mut msg = Vec::with_capacity(DOMAIN.len() + out.len() - start);
        msg.extend_from_slice(DOMAIN);
        msg.extend_from_slice(&out[start..]);
        if let Some(r) = fss {
            out.extend_from_slice(b",\"mac\":\"");
            write_hex(out, &r.mac(&msg));
            out.push(b'"');
        }
        let sig = self.pair.sign(&msg);
        out.extend_from_slice(b",\"sig\":\"");
        out.extend_from_slice(STANDARD.encode(sig.as_ref()).as_bytes());
        out.extend_from_slice(b"\"}\n");
    }
}

/// The signed part of a checkpoint line: `{"checkpoint":...,"every":N`.
fn write_unsigned(
    seq: u64,
    hash: &[u8; 32],
    time: SystemTime,
    key: &str,
    every: u64,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(PREFIX);
    write_u64(out, seq);
    out.extend_from_slice(b",\"head\":\"");
    write_hex(out, hash);
    out.extend_from_slice(b"\",\"time\":\"");
    write_rfc3339_micros(time, out);
    out.extend_from_slice(b"\",\"key\":\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\",\"every\":");
    write_u64(out, every);
}

/// A parsed checkpoint line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `seq` of the last record covered.
    pub seq: u64,
    /// Chain hash of that record.
    pub head: [u8; 32],
    pub time: String,
    /// Key id of the signer.
    pub key: String,
    /// `checkpoint_records` in force when it was written.
    pub every: u64,
    /// Forward-secure epoch and MAC (`forward_secure = true`).
    pub epoch: Option<u64>,
    pub mac: Option<[u8; 32]>,
    /// The exact bytes the signature covers (after [`DOMAIN`]).
    signed: Vec<u8>,
    sig: Vec<u8>,
}

impl Checkpoint {
    /// True when the forward-secure MAC is there and made with `r`'s key.
    pub fn mac_ok(&self, r: &Ratchet) -> bool {
        let mut msg = Vec::with_capacity(DOMAIN.len() + self.signed.len());
        msg.extend_from_slice(DOMAIN);
        msg.extend_from_slice(&self.signed);
        self.mac.is_some_and(|m| m == r.mac(&msg))
    }

    /// The head this checkpoint seals.
    pub fn chain_head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.head,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    checkpoint: u64,
    head: &'a str,
    time: &'a str,
    key: &'a str,
    every: u64,
    #[serde(default)]
    epoch: Option<u64>,
    #[serde(default)]
    mac: Option<&'a str>,
    sig: &'a str,
}

/// Parses a checkpoint line (without newline). The signed bytes are
/// rebuilt from the parsed fields, so only a line that says exactly what
/// was signed can verify.
pub fn parse_checkpoint(line: &[u8]) -> Result<Checkpoint, String> {
    let l: Line<'_> =
        serde_json::from_slice(line).map_err(|e| format!("not a valid checkpoint: {e}"))?;
    let head = parse_hex32(l.head).ok_or("checkpoint `head` is not 64 hex digits")?;
    let plain = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":.-".contains(&b))
    };
    if !plain(l.time) || !plain(l.key) || l.key.len() != 16 {
        return Err("checkpoint `time` or `key` is malformed".into());
    }
    let sig = STANDARD
        .decode(l.sig)
        .map_err(|_| "checkpoint `sig` is not base64")?;
    let mut signed = Vec::with_capacity(200);
    signed.extend_from_slice(PREFIX);
    write_u64(&mut signed, l.checkpoint);
    signed.extend_from_slice(b",\"head\":\"");
    write_hex(&mut signed, &head);
    signed.extend_from_slice(b"\",\"time\":\"");
    signed.extend_from_slice(l.time.as_bytes());
    signed.extend_from_slice(b"\",\"key\":\"");
    signed.extend_from_slice(l.key.as_bytes());
    signed.extend_from_slice(b"\",\"every\":");
    write_u64(&mut signed, l.every);
    if let Some(e) = l.epoch {
        signed.extend_from_slice(b",\"epoch\":");
        write_u64(&mut signed, e);
    }
    let mac = match l.mac {
        Some(m) => Some(parse_hex32(m).ok_or("checkpoint `mac` is not 64 hex digits")?),
        None => None,
    };
    Ok(Checkpoint {
        seq: l.checkpoint,
        head,
        time: l.time.to_string(),
        key: l.key.to_string(),
        every: l.every,
        epoch: l.epoch,
        mac,
        signed,
        sig,
    })
}

/// Finds a checkpoint anywhere in a line of a service log (journald,
/// syslog or a plain file put prefixes in front of it).
pub fn find_checkpoint(line: &[u8]) -> Option<&[u8]> {
    let start = line.windows(PREFIX.len()).position(|w| w == PREFIX)?;
    let end = line.iter().rposition(|&b| b == b'}')?;
    (end > start).then(|| &line[start..=end])
}

/// What is wrong with a checkpoint's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    /// Made with another key (its id, and the expected one).
    OtherKey { found: String, expected: String },
    /// The key id matches but the signature does not.
    BadSignature,
    /// `verify --seed`: no forward-secure MAC, or one the seed's key for
    /// that epoch did not make.
    BadMac { epoch: Option<u64> },
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::OtherKey { found, expected } => write!(
                f,
                "checkpoint signed by another key (key id {found}, expected {expected})"
            ),
            SealError::BadSignature => write!(f, "checkpoint signature does not verify"),
            SealError::BadMac { epoch: None } => {
                write!(f, "checkpoint has no forward-secure MAC (epoch)")
            }
            SealError::BadMac { epoch: Some(e) } => write!(
                f,
                "forward-secure MAC of epoch {e} does not verify (re-sealed with a key taken later?)"
            ),
        }
    }
}

/// The public key an auditor holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyKey {
    raw: Vec<u8>,
    id: String,
}

impl VerifyKey {
    fn from_raw(raw: &[u8]) -> VerifyKey {
        VerifyKey {
            raw: raw.to_vec(),
            id: key_id(raw),
        }
    }

    /// Reads an Ed25519 public key in PEM (`PUBLIC KEY`, SubjectPublicKeyInfo).
    pub fn load(path: &Path) -> Result<VerifyKey, String> {
        let der = SubjectPublicKeyInfoDer::from_pem_file(path)
            .map_err(|e| format!("{}: no PEM public key ({e})", path.display()))?;
        match der.as_ref().strip_prefix(&SPKI_PREFIX[..]) {
            Some(raw) if raw.len() == 32 => Ok(VerifyKey::from_raw(raw)),
            _ => Err(format!("{}: not an Ed25519 public key", path.display())),
        }
    }

    /// The key id checkpoints made with this key carry.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Checks a checkpoint's signature with whichever of `keys` made it
    /// (several after a key rotation: the writer seals the head with the
    /// old key and again with the new one).
    pub fn check_any(keys: &[VerifyKey], cp: &Checkpoint) -> Result<(), SealError> {
        match keys.iter().find(|k| k.id == cp.key) {
            Some(k) => k.check(cp),
            None => Err(SealError::OtherKey {
                found: cp.key.clone(),
                expected: keys
                    .iter()
                    .map(|k| k.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Checks a checkpoint's signature.
    pub fn check(&self, cp: &Checkpoint) -> Result<(), SealError> {
        if cp.key != self.id {
            return Err(SealError::OtherKey {
                found: cp.key.clone(),
                expected: self.id.clone(),
            });
        }
        let mut msg = Vec::with_capacity(DOMAIN.len() + cp.signed.len());
        msg.extend_from_slice(DOMAIN);
        msg.extend_from_slice(&cp.signed);
        UnparsedPublicKey::new(&ED25519, &self.raw)
            .verify(&msg, &cp.sig)
            .map_err(|_| SealError::BadSignature)
    }

    /// The key as PEM (`PUBLIC KEY`).
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.raw);
        pem("PUBLIC KEY", &der)
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// What `audit keygen` wrote.
#[derive(Debug)]
pub struct Keys {
    /// `audit-signing.key`, for `[audit] signing_key`.
    pub private: PathBuf,
    /// `audit-signing.pub.pem`, for `verify --key`.
    pub public: PathBuf,
    /// `audit-signing.fss`, the forward-secure state (epoch 0).
    pub forward: PathBuf,
    pub id: String,
    /// The forward-secure seed (hex), for `verify --seed`: shown once.
    pub seed: String,
}

/// `regate audit keygen --out DIR`: writes `audit-signing.key` (PKCS#8
/// PEM, mode 0600, never overwritten), `audit-signing.pub.pem` and the
/// forward-secure state `audit-signing.fss` (mode 0600).
pub fn keygen(dir: &Path) -> io::Result<Keys> {
    let (sealer, der) = Sealer::generate().map_err(io::Error::other)?;
    let private = dir.join("audit-signing.key");
    let public = dir.join("audit-signing.pub.pem");
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", private.display())))?;
    file.write_all(pem("PRIVATE KEY", &der).as_bytes())?;
    file.sync_all()?;
    std::fs::write(&public, sealer.verify_key().to_pem())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", public.display())))?;
    let forward = super::forward::state_path(&private);
    let seed = super::forward::create(&forward)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", forward.display())))?;
    Ok(Keys {
        private,
        public,
        forward,
        id: sealer.id,
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_head_verifies_and_a_changed_one_does_not() {
        let (sealer, _) = Sealer::generate().unwrap();
        let head = ChainHead {
            seq: 42,
            hash: [7; 32],
        };
        let mut out = Vec::new();
        sealer.seal(&head, 1000, SystemTime::now(), &mut out);
        assert!(out.ends_with(b"}\n") && is_checkpoint(&out));
        let line = &out[..out.len() - 1];
        let cp = parse_checkpoint(line).unwrap();
        assert_eq!((cp.chain_head(), cp.every), (head, 1000));
        let key = sealer.verify_key();
        assert_eq!(key.check(&cp), Ok(()));
        let text = String::from_utf8(line.to_vec()).unwrap();
        let forged = text.replace("\"checkpoint\":42", "\"checkpoint\":43");
        let cp = parse_checkpoint(forged.as_bytes()).unwrap();
        assert_eq!(key.check(&cp), Err(SealError::BadSignature));
        let (other, _) = Sealer::generate().unwrap();
        assert!(matches!(
            other.verify_key().check(&parse_checkpoint(line).unwrap()),
            Err(SealError::OtherKey { .. })
        ));
    }

    #[test]
    fn keygen_writes_a_private_key_only_its_owner_reads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let Keys {
            private,
            public,
            id,
            forward,
            ..
        } = keygen(dir.path()).unwrap();
        assert_eq!(
            std::fs::metadata(&forward).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealer = Sealer::load(&private).unwrap();
        let key = VerifyKey::load(&public).unwrap();
        assert_eq!((sealer.key_id(), key.id()), (id.as_str(), id.as_str()));
        assert!(
            keygen(dir.path()).is_err(),
            "an existing key is never overwritten"
        );
        assert!(Sealer::load(&public).is_err());
    }

    #[test]
    fn a_checkpoint_is_found_behind_a_log_prefix() {
        let line = b"Dec 06 01:00:00 host regate[12]: {\"checkpoint\":1,\"x\":2}";
        assert_eq!(
            find_checkpoint(line),
            Some(&b"{\"checkpoint\":1,\"x\":2}"[..])
        );
        assert_eq!(find_checkpoint(b"nothing here"), None);
    }
}
