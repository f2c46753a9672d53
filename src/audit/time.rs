//! RFC 3339 timestamps in UTC with microseconds
//! (`2026-11-27T15:39:17.123456Z`), formatted straight from a
//! [`SystemTime`] with the civil-from-days algorithm, so the audit record
//! needs no date library. Owns formatting only; never reads the clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of every timestamp this module writes.
pub const RFC3339_MICROS_LEN: usize = 27;

/// Appends `t` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` to `out`. Times before the
/// Unix epoch are written as the epoch (an audit clock is never that wrong
/// on purpose, and the field must stay well-formed).
pub fn write_rfc3339_micros(t: SystemTime, out: &mut Vec<u8>) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let micros = since.subsec_micros();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut buf = [0u8; RFC3339_MICROS_LEN];
    // Years past 9999 cannot be written in four digits; clamp rather than
    // emit a malformed field.
    let year = year.clamp(0, 9999) as u32;
    put_digits(&mut buf[0..4], year);
    buf[4] = b'-';
    put_digits(&mut buf[5..7], month);
    buf[7] = b'-';
    put_digits(&mut buf[8..10], day);
    buf[10] = b'T';
    put_digits(&mut buf[11..13], (rem / 3600) as u32);
    buf[13] = b':';
    put_digits(&mut buf[14..16], ((rem % 3600) / 60) as u32);
    buf[16] = b':';
    put_digits(&mut buf[17..19], (rem % 60) as u32);
    buf[19] = b'.';
    put_digits(&mut buf[20..26], micros);
    buf[26] = b'Z';
    out.extend_from_slice(&buf);
}

/// `t` as an owned RFC 3339 string (tests, tools).
pub fn rfc3339_micros(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(RFC3339_MICROS_LEN);
    write_rfc3339_micros(t, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `n` as zero-padded decimal filling `dst` exactly.
fn put_digits(dst: &mut [u8], mut n: u32) {
    for slot in dst.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar. Howard Hinnant's `civil_from_days`: eras of 400 years,
/// years starting in March so the leap day falls last.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u32) -> String {
        rfc3339_micros(UNIX_EPOCH + Duration::new(secs, micros * 1000))
    }

    #[test]
    fn known_instants() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(at(1_709_164_799, 999_999), "2024-02-28T23:59:59.999999Z");
        assert_eq!(at(1_709_251_200, 0), "2024-03-01T00:00:00.000000Z");
        // 2026-11-27T15:39:17.123456Z
        assert_eq!(at(1_795_793_957, 123_456), "2026-11-27T15:39:17.123456Z");
        assert_eq!(at(4_102_444_800, 0), "2100-01-01T00:00:00.000000Z");
    }

    #[test]
    fn before_epoch_clamps() {
        let t = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339_micros(t), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn every_day_round_trips_through_days_from_civil() {
        // Cross-check against a naive day counter for 1970..2200.
        let mut days = 0i64;
        for year in 1970..2200i64 {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            let lens = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            for (m, len) in lens.iter().enumerate() {
                for d in 1..=*len {
                    assert_eq!(civil_from_days(days), (year, m as u32 + 1, d));
                    days += 1;
                }
            }
        }
    }
}
