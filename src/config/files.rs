//! Checks on the files a config names, beyond "can it be parsed": the
//! validity dates of the TLS certificate (read from its DER: notBefore and
//! notAfter of the TBSCertificate), the permissions of the private key,
//! and whether this user may write the audit file's directory.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ConfigError;

/// Warn when the certificate expires within this.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);
/// Clock skew tolerated for a certificate issued moments ago (notBefore a
/// little in the future, as ACME and cert-manager certificates can be).
const NOT_YET_VALID_LEEWAY: i64 = 300;

/// notBefore and notAfter of a certificate, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

/// Reads the validity of a DER certificate; `None` when it is not one.
pub fn validity(der: &[u8]) -> Option<Validity> {
    let (cert, _) = tlv(der, 0x30)?;
    let (mut tbs, _) = tlv(cert, 0x30)?;
    // [0] EXPLICIT version, optional
    if tbs.first() == Some(&0xa0) {
        tbs = tlv(tbs, 0xa0)?.1;
    }
    let (_, rest) = tlv(tbs, 0x02)?; // serialNumber
    let (_, rest) = tlv(rest, 0x30)?; // signature algorithm
    let (_, rest) = tlv(rest, 0x30)?; // issuer
    let (validity, _) = tlv(rest, 0x30)?;
    let (not_before, rest) = time(validity)?;
    let (not_after, _) = time(rest)?;
    Some(Validity {
        not_before,
        not_after,
    })
}

/// One DER element of tag `tag`: (its contents, what follows it).
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (&rest[..len], &rest[len..]))
}

/// A UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ).
fn time(input: &[u8]) -> Option<(i64, &[u8])> {
    let (tag, year_digits) = match input.first()? {
        0x17 => (0x17, 2),
        0x18 => (0x18, 4),
        _ => return None,
    };
    let (v, rest) = tlv(input, tag)?;
    let text = std::str::from_utf8(v).ok()?.strip_suffix('Z')?;
    if text.len() != year_digits + 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |a: usize, b: usize| text[a..b].parse::<i64>().ok();
    let mut year = num(0, year_digits)?;
    if year_digits == 2 {
        // RFC 5280: 50..99 are 19xx, 00..49 are 20xx
        year += if year >= 50 { 1900 } else { 2000 };
    }
    let o = year_digits;
    let (month, day) = (num(o, o + 2)?, num(o + 2, o + 4)?);
    let (h, m, s) = (num(o + 4, o + 6)?, num(o + 6, o + 8)?, num(o + 8, o + 10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some((
        days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + s,
        rest,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Seconds since the epoch, now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A UTC date for messages: `2026-12-06T01:02:03Z` (before 1970: 1970).
pub fn format_unix(t: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(t.max(0) as u64);
    crate::audit::time::rfc3339_micros(at).replace(".000000Z", "Z")
}

/// The leaf certificate's validity against `now`: an error when it has
/// expired or is not valid yet.
pub fn check_validity(v: Validity, now: i64, path: &Path) -> Result<(), ConfigError> {
    if v.not_after < now {
        return Err(ConfigError::new(
            "tls.cert",
            format!("{} expired on {}", path.display(), format_unix(v.not_after)),
        ));
    }
    if v.not_before > now + NOT_YET_VALID_LEEWAY {
        return Err(ConfigError::new(
            "tls.cert",
            format!(
                "{} is not valid before {}",
                path.display(),
                format_unix(v.not_before)
            ),
        ));
    }
    Ok(())
}

/// A warning when the certificate expires within [`EXPIRY_WARNING`].
pub fn expiry_warning(v: Validity, now: i64, path: &Path) -> Option<String> {
    let left = v.not_after - now;
    (left >= 0 && left < EXPIRY_WARNING.as_secs() as i64).then(|| {
        format!(
            "tls.cert: {} expires on {} (in {} days)",
            path.display(),
            format_unix(v.not_after),
            left / 86400
        )
    })
}

/// A warning when the private key can be read by group or others.
pub fn key_permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "tls.key: {} is accessible by group or others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        )
    })
}

/// An error when this process may not create and append to the audit
/// file: its directory must be writable and searchable, an existing file
/// writable.
pub fn check_audit_writable(path: &Path) -> Result<(), ConfigError> {
    use rustix::fs::{access, Access};
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m).to_string())
        .unwrap_or_else(|_| "?".into());
    if path.exists() {
        return access(path, Access::WRITE_OK).map_err(|e| {
            ConfigError::new(
                "audit.path",
                format!(
                    "{} is not writable by this user (uid {uid}): {e}",
                    path.display()
                ),
            )
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    access(dir, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| {
        ConfigError::new(
            "audit.path",
            format!(
                "cannot create files in {} as this user (uid {uid}): {e}",
                dir.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        p.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_utc_and_generalized_times() {
        // rcgen writes UTCTime up to 2049 and GeneralizedTime from 2050
        let v = validity(&cert_with((2020, 2, 29), (2051, 12, 31))).unwrap();
        assert_eq!(format_unix(v.not_before), "2020-02-29T00:00:00Z");
        assert_eq!(format_unix(v.not_after), "2051-12-31T00:00:00Z");
        assert_eq!(v.not_before, 1_582_934_400);
        assert!(validity(b"not a certificate").is_none());
        assert!(validity(&[0x30, 0x82, 0xff]).is_none());
    }

    #[test]
    fn expired_not_yet_valid_and_expiring_soon() {
        let p = Path::new("server.pem");
        let v = Validity {
            not_before: 1_000,
            not_after: 2_000_000,
        };
        assert!(check_validity(v, 1_500, p).is_ok());
        let e = check_validity(v, 2_000_001, p).unwrap_err();
        assert_eq!(e.key, "tls.cert");
        assert!(e.problem.contains("expired on 1970-01-24"), "{e}");
        let e = check_validity(v, 1_000 - NOT_YET_VALID_LEEWAY - 1, p).unwrap_err();
        assert!(e.problem.contains("not valid before"), "{e}");
        assert!(check_validity(v, 1_000 - NOT_YET_VALID_LEEWAY, p).is_ok());
        assert!(expiry_warning(v, 2_000_000 - 86_400 * 29, p).is_some());
        assert!(expiry_warning(v, 2_000_000 - 86_400 * 31, p).is_none());
    }
}
