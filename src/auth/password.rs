//! Password hashes as stored in the users file: parsing (argon2id PHC
//! strings, `$argon2i$` read-only with a warning, and bcrypt
//! `$2a$`/`$2b$`/`$2y$`), verification, warnings about weak costs, dummy
//! hashes of the same cost for unknown users, [`hash_password`] and
//! [`hash_password_bcrypt`] for `regate hash-password`, and
//! [`read_password`] for its prompt. Verification is CPU-heavy and blocking:
//! callers run it on a blocking thread. Nothing here logs, and no error
//! carries a password or a hash.

use std::io::{BufRead, IsTerminal as _};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHash, Version};
use rand::RngCore as _;

/// OWASP-recommended argon2id memory cost (19 MiB, in KiB).
pub const OWASP_M_COST_KIB: u32 = 19 * 1024;
/// OWASP-recommended argon2id iterations.
pub const OWASP_T_COST: u32 = 2;
/// OWASP-recommended argon2id parallelism.
pub const OWASP_P_COST: u32 = 1;
/// bcrypt costs below this draw a warning.
pub const MIN_BCRYPT_COST: u32 = 10;
/// bcrypt cost `regate hash-password --bcrypt` uses without `--cost`.
pub const DEFAULT_BCRYPT_COST: u32 = 12;
/// The largest argon2 memory cost a users file may ask for (256 MiB): a
/// typo must not let every login allocate gigabytes.
const MAX_M_COST_KIB: u32 = 256 * 1024;
/// The largest argon2 iteration count accepted.
const MAX_T_COST: u32 = 64;
/// bcrypt only reads the first 72 bytes of a password.
const BCRYPT_MAX_PASSWORD: usize = 72;
/// Longest line `read_password` accepts from a pipe.
const MAX_PASSWORD_LINE: u64 = 4096;

/// Errors of hashing or reading a password; none carries the password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the password is empty")]
    Empty,
    #[error("the two passwords differ")]
    Mismatch,
    #[error("the password line is longer than {MAX_PASSWORD_LINE} bytes")]
    TooLong,
    #[error("the password is not valid UTF-8")]
    NotUtf8,
    #[error("reading the password failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The cost parameters of a stored hash: unknown users are checked against
/// a dummy hash with the same profile so timing does not tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CostProfile {
    Argon2id { m: u32, t: u32, p: u32, len: usize },
    Bcrypt { cost: u32 },
}

/// A validated password hash from the users file.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash {
    text: String,
    profile: CostProfile,
    /// `$argon2i$`: verified, but never written by regate.
    legacy: bool,
}

impl std::fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash is not a secret, but an offline attacker would love it.
        write!(f, "StoredHash({:?})", self.profile)
    }
}

impl StoredHash {
    /// Parses a stored hash; the error text never repeats the input.
    pub fn parse(text: &str) -> Result<StoredHash, &'static str> {
        let profile = if text.starts_with("$argon2") {
            argon2_profile(text)?
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| text.starts_with(p)) {
            bcrypt_profile(text)?
        } else {
            return Err(
                "not an argon2id PHC string ($argon2id$...) or a bcrypt hash ($2a$/$2b$/$2y$)",
            );
        };
        Ok(StoredHash {
            text: text.to_owned(),
            profile,
            legacy: text.starts_with("$argon2i$"),
        })
    }

    /// Why this hash deserves a warning, if it does: `$argon2i$`, bcrypt
    /// below cost 10, argon2 below m = 19 MiB or t = 2.
    pub fn weakness(&self) -> Option<String> {
        if self.legacy {
            return Some(
                "argon2i is accepted read-only; replace it with an argon2id hash from `regate hash-password`".into(),
            );
        }
        match self.profile {
            CostProfile::Bcrypt { cost } if cost < MIN_BCRYPT_COST => Some(format!(
                "weak hash: bcrypt cost {cost} is below {MIN_BCRYPT_COST}"
            )),
            CostProfile::Argon2id { m, t, .. } if m < OWASP_M_COST_KIB || t < OWASP_T_COST => {
                Some(format!(
                    "weak hash: argon2id m={m} KiB, t={t} is below m={OWASP_M_COST_KIB} KiB (19 MiB), t={OWASP_T_COST}"
                ))
            }
            _ => None,
        }
    }

    /// The hash text (for change detection; not a secret, but never log it).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Algorithm and cost.
    pub fn profile(&self) -> CostProfile {
        self.profile
    }

    /// Checks `password` against this hash. Blocking and slow by design; the
    /// final comparison is constant-time in both libraries (subtle).
    pub fn verify(&self, password: &[u8]) -> bool {
        match self.profile {
            CostProfile::Argon2id { .. } => match PasswordHash::new(&self.text) {
                Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
                Err(_) => false,
            },
            CostProfile::Bcrypt { .. } => {
                // bcrypt would silently accept anything sharing the first 72
                // bytes; spend the same time, then refuse.
                let ok = bcrypt::verify(password, &self.text).unwrap_or(false);
                ok && password.len() <= BCRYPT_MAX_PASSWORD
            }
        }
    }

    /// A hash of a random password with the same algorithm and cost.
    pub fn dummy(profile: CostProfile) -> Result<StoredHash, PasswordError> {
        let mut secret = [0u8; 24];
        rand::rng().fill_bytes(&mut secret);
        let text = match profile {
            CostProfile::Argon2id { m, t, p, len } => argon2_hash(&secret, m, t, p, Some(len))?,
            CostProfile::Bcrypt { cost } => {
                bcrypt::hash(secret, cost).map_err(|e| PasswordError::Hash(e.to_string()))?
            }
        };
        StoredHash::parse(&text).map_err(|e| PasswordError::Hash(e.to_owned()))
    }
}

impl CostProfile {
    /// A rough time estimate (microseconds on one core of a 2020s server)
    /// to pick the table's strongest entry: bcrypt doubles per cost step
    /// (~60 ms at 10), argon2 grows with m × t (~30 ms at 19 MiB, t = 2).
    pub fn work(self) -> u64 {
        match self {
            CostProfile::Bcrypt { cost } => 60_000u64.saturating_mul(1u64 << cost.min(40)) >> 10,
            CostProfile::Argon2id { m, t, p, .. } => {
                u64::from(m) * u64::from(t) * 3 / 4 + u64::from(p)
            }
        }
    }
}

fn argon2_profile(text: &str) -> Result<CostProfile, &'static str> {
    let parsed = PasswordHash::new(text).map_err(|_| "malformed argon2 PHC string")?;
    if parsed.algorithm != Algorithm::Argon2id.ident()
        && parsed.algorithm != Algorithm::Argon2i.ident()
    {
        return Err("only argon2id (or argon2i, read-only) is accepted, not argon2d");
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("argon2 PHC string without salt or hash");
    }
    let params = Params::try_from(&parsed).map_err(|_| "invalid argon2 parameters")?;
    if params.m_cost() > MAX_M_COST_KIB {
        return Err("argon2 memory cost above 256 MiB");
    }
    if params.t_cost() > MAX_T_COST {
        return Err("argon2 iteration count above 64");
    }
    let len = parsed
        .hash
        .map(|h| h.len())
        .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    Ok(CostProfile::Argon2id {
        m: params.m_cost(),
        t: params.t_cost(),
        p: params.p_cost(),
        len,
    })
}

fn bcrypt_profile(text: &str) -> Result<CostProfile, &'static str> {
    const ALPHABET: &[u8] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let b = text.as_bytes();
    let well_formed = b.len() == 60
        && b.get(6) == Some(&b'$')
        && b[4..6].iter().all(u8::is_ascii_digit)
        && b[7..].iter().all(|c| ALPHABET.contains(c));
    if !well_formed {
        return Err("malformed bcrypt hash");
    }
    let cost: u32 = text[4..6].parse().map_err(|_| "malformed bcrypt cost")?;
    if !(4..=31).contains(&cost) {
        return Err("bcrypt cost outside 4..=31");
    }
    Ok(CostProfile::Bcrypt { cost })
}

fn argon2_hash(
    password: &[u8],
    m: u32,
    t: u32,
    p: u32,
    len: Option<usize>,
) -> Result<String, PasswordError> {
    let params = Params::new(m, t, p, len).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Hashes a password as argon2id with the OWASP parameters (m = 19 MiB,
/// t = 2, p = 1), for the users file.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    argon2_hash(
        password.as_bytes(),
        OWASP_M_COST_KIB,
        OWASP_T_COST,
        OWASP_P_COST,
        None,
    )
}

/// Hashes a password as bcrypt (`$2b$`) with `cost` (4..=31), for teams
/// whose tools need bcrypt.
pub fn hash_password_bcrypt(password: &str, cost: u32) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > BCRYPT_MAX_PASSWORD {
        return Err(PasswordError::Hash(format!(
            "bcrypt reads only the first {BCRYPT_MAX_PASSWORD} bytes; use argon2id for longer passwords"
        )));
    }
    if !(4..=31).contains(&cost) {
        return Err(PasswordError::Hash("bcrypt cost must be 4..=31".into()));
    }
    bcrypt::hash(password, cost).map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Reads a password for `regate hash-password`: from the terminal without
/// echo (asked twice), or one line from stdin when stdin is not a terminal.
pub fn read_password() -> Result<String, PasswordError> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            return Err(PasswordError::Mismatch);
        }
        non_empty(first)
    } else {
        read_password_line(std::io::stdin().lock())
    }
}

/// One line from `input` without its line ending (the non-tty case).
pub fn read_password_line(input: impl BufRead) -> Result<String, PasswordError> {
    let mut line = Vec::new();
    let mut limited = input.take(MAX_PASSWORD_LINE + 1);
    limited.read_until(b'\n', &mut line)?;
    if line.len() as u64 > MAX_PASSWORD_LINE {
        return Err(PasswordError::TooLong);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    let text = String::from_utf8(line).map_err(|_| PasswordError::NotUtf8)?;
    non_empty(text)
}

fn non_empty(password: String) -> Result<String, PasswordError> {
    if password.is_empty() {
        Err(PasswordError::Empty)
    } else {
        Ok(password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_password_uses_owasp_parameters_and_verifies() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        let stored = StoredHash::parse(&h).unwrap();
        assert!(stored.verify(b"correct horse"));
        assert!(!stored.verify(b"correct horsE"));
    }

    #[test]
    fn bcrypt_verifies_and_refuses_truncation_tricks() {
        let long = "x".repeat(72);
        let h = bcrypt::hash(&long, 4).unwrap();
        let stored = StoredHash::parse(&h).unwrap();
        assert_eq!(stored.profile(), CostProfile::Bcrypt { cost: 4 });
        assert!(stored.verify(long.as_bytes()));
        assert!(!stored.verify(format!("{long}extra").as_bytes()));
        let y = h.replacen("$2b$", "$2y$", 1);
        assert!(StoredHash::parse(&y).unwrap().verify(long.as_bytes()));
    }

    #[test]
    fn rejects_other_formats_without_echoing() {
        for bad in [
            "plaintext",
            "$1$abc$def",
            "$2b$04$short",
            "$2b$99$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
            "$argon2d$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=19$m=1048576,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            let err = StoredHash::parse(bad).unwrap_err();
            assert!(!err.contains(bad), "{err}");
        }
    }

    #[test]
    fn go_and_php_bcrypt_prefixes_and_argon2i_verify() {
        let h = bcrypt::hash("pw", 4).unwrap();
        for prefix in ["$2a$", "$2y$"] {
            let other = h.replacen("$2b$", prefix, 1);
            let stored = StoredHash::parse(&other).unwrap();
            assert!(stored.verify(b"pw"), "{prefix}");
            assert!(!stored.verify(b"px"), "{prefix}");
        }
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let params = Params::new(19 * 1024, 2, 1, None).unwrap();
        let i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password(b"legacy", &salt)
            .unwrap()
            .to_string();
        let stored = StoredHash::parse(&i).unwrap();
        assert!(stored.verify(b"legacy") && !stored.verify(b"legacx"));
        assert!(stored.weakness().unwrap().contains("argon2i"));
    }

    #[test]
    fn weak_costs_are_named() {
        let weak = StoredHash::parse(&bcrypt::hash("pw", 9).unwrap()).unwrap();
        assert!(weak.weakness().unwrap().contains("bcrypt cost 9"));
        let ok = StoredHash::parse(&hash_password_bcrypt("pw", 10).unwrap()).unwrap();
        assert_eq!(ok.weakness(), None);
        let light = argon2_hash(b"pw", 8 * 1024, 2, 1, None).unwrap();
        let w = StoredHash::parse(&light).unwrap().weakness().unwrap();
        assert!(w.contains("m=8192"), "{w}");
        let once = argon2_hash(b"pw", 19 * 1024, 1, 1, None).unwrap();
        assert!(StoredHash::parse(&once).unwrap().weakness().is_some());
        let owasp = hash_password("pw").unwrap();
        assert_eq!(StoredHash::parse(&owasp).unwrap().weakness(), None);
    }

    #[test]
    fn work_orders_costs() {
        let b = |cost| CostProfile::Bcrypt { cost }.work();
        let a = |m, t| {
            CostProfile::Argon2id {
                m,
                t,
                p: 1,
                len: 32,
            }
            .work()
        };
        assert!(b(4) < b(10) && b(10) < b(12));
        assert!(a(19456, 2) < a(65536, 3));
        assert!(b(4) < a(19456, 2) && a(19456, 2) < b(12));
    }

    #[test]
    fn dummy_matches_profile() {
        let profile = CostProfile::Argon2id {
            m: 64,
            t: 1,
            p: 1,
            len: 32,
        };
        assert_eq!(StoredHash::dummy(profile).unwrap().profile(), profile);
        let b = CostProfile::Bcrypt { cost: 4 };
        assert_eq!(StoredHash::dummy(b).unwrap().profile(), b);
    }

    #[test]
    fn password_line_from_a_pipe() {
        assert_eq!(
            read_password_line(&b"s3cret\r\nrest"[..]).unwrap(),
            "s3cret"
        );
        assert_eq!(read_password_line(&b"pa ss"[..]).unwrap(), "pa ss");
        assert!(matches!(
            read_password_line(&b"\n"[..]),
            Err(PasswordError::Empty)
        ));
        let long = vec![b'a'; 5000];
        assert!(matches!(
            read_password_line(&long[..]),
            Err(PasswordError::TooLong)
        ));
    }
}
