//! Password hashes as stored in the users file: parsing (argon2id PHC
//! strings and bcrypt `$2b$`/`$2y$`), verification, dummy hashes of the same
//! cost for unknown users, [`hash_password`] for `regate hash-password`, and
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
        } else if text.starts_with("$2b$") || text.starts_with("$2y$") {
            bcrypt_profile(text)?
        } else {
            return Err("not an argon2id PHC string ($argon2id$...) or a bcrypt hash ($2b$/$2y$)");
        };
        Ok(StoredHash {
            text: text.to_owned(),
            profile,
        })
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

fn argon2_profile(text: &str) -> Result<CostProfile, &'static str> {
    let parsed = PasswordHash::new(text).map_err(|_| "malformed argon2 PHC string")?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err("only argon2id is accepted (not argon2i or argon2d)");
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
            "$2a$04$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
            "$2b$04$short",
            "$2b$99$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
            "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=19$m=1048576,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            let err = StoredHash::parse(bad).unwrap_err();
            assert!(!err.contains(bad), "{err}");
        }
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
