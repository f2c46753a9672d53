//! The hand-written JSON writer behind audit lines: string escaping that
//! keeps a record on exactly one terminal-safe line, per-field truncation
//! with a visible marker, and integer/hex formatting into a reused
//! `Vec<u8>`. Owns bytes only; knows nothing about record fields.
//!
//! Escaped beyond what JSON requires, so a hostile value cannot move a
//! terminal's cursor or reorder what a reader sees: DEL (U+007F), the C1
//! controls (U+0080..U+009F), the line/paragraph separators U+2028/U+2029
//! and the bidi controls (U+200E, U+200F, U+202A..U+202E, U+2066..U+2069).

/// Longest input (in bytes) any one string field keeps before truncation.
pub const MAX_FIELD_BYTES: usize = 1024;

/// Appended (inside the string) to a value cut at [`MAX_FIELD_BYTES`].
pub const TRUNCATED_MARKER: &str = "…[truncated]";

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `s` as a quoted, escaped, possibly truncated JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let (kept, cut) = truncate_str(s);
    out.push(b'"');
    escape_into(out, kept);
    if cut {
        out.extend_from_slice(TRUNCATED_MARKER.as_bytes());
    }
    out.push(b'"');
}

/// Writes raw bytes (e.g. a request target) as a JSON string: valid UTF-8
/// runs are escaped as by [`write_str`], invalid bytes become U+FFFD.
pub fn write_bytes_lossy(out: &mut Vec<u8>, b: &[u8]) {
    let cut = b.len() > MAX_FIELD_BYTES;
    let kept = if cut { &b[..MAX_FIELD_BYTES] } else { b };
    out.push(b'"');
    for chunk in kept.utf8_chunks() {
        escape_into(out, chunk.valid());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
    if cut {
        out.extend_from_slice(TRUNCATED_MARKER.as_bytes());
    }
    out.push(b'"');
}

/// Cuts `s` to at most [`MAX_FIELD_BYTES`] on a character boundary.
fn truncate_str(s: &str) -> (&str, bool) {
    if s.len() <= MAX_FIELD_BYTES {
        return (s, false);
    }
    let mut end = MAX_FIELD_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// Escapes the contents of a string (no quotes). Most values (names,
/// routes, ids) are plain printable ASCII: they are recognised by one
/// branch-free pass and copied whole.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    if all_plain(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
    } else {
        escape_runs(out, s);
    }
}

/// True when no byte needs escaping: printable ASCII other than `"` and
/// `\`. No early exit, so the compiler can check many bytes per step.
fn all_plain(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        ok & (b.wrapping_sub(0x20) < 0x5f) & (b != b'"') & (b != b'\\')
    })
}

/// The general case: safe ASCII runs are copied in one go; only bytes that
/// need a decision are looked at twice.
fn escape_runs(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            i += 1;
            continue;
        }
        if b < 0x80 {
            out.extend_from_slice(&bytes[run_start..i]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => write_u_escape(out, u32::from(b)),
            }
            i += 1;
            run_start = i;
            continue;
        }
        // Non-ASCII: decode the one character starting here.
        let Some(c) = s[i..].chars().next() else {
            break;
        };
        let len = c.len_utf8();
        if needs_unicode_escape(c) {
            out.extend_from_slice(&bytes[run_start..i]);
            write_u_escape(out, u32::from(c));
            run_start = i + len;
        }
        i += len;
    }
    out.extend_from_slice(&bytes[run_start..]);
}

/// Non-ASCII characters that could mislead a terminal or a reader.
fn needs_unicode_escape(c: char) -> bool {
    matches!(c,
        '\u{80}'..='\u{9f}'
        | '\u{200e}' | '\u{200f}'
        | '\u{2028}' | '\u{2029}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `\uXXXX` for a code point in the Basic Multilingual Plane.
fn write_u_escape(out: &mut Vec<u8>, cp: u32) {
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((cp >> shift) & 0xf) as usize]);
    }
}

/// Appends `n` in decimal.
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `bytes` as lowercase hex (32 bytes at a time through a stack
/// buffer: one append per chunk instead of two pushes per byte).
pub fn write_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.chunks(32) {
        let mut buf = [0u8; 64];
        for (pair, b) in buf.chunks_exact_mut(2).zip(chunk) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0xf)];
        }
        out.extend_from_slice(&buf[..chunk.len() * 2]);
    }
}

/// `bytes` as an owned lowercase hex string.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    write_hex(&mut out, bytes);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_controls_quotes_and_terminal_tricks() {
        let e = enc("a\"b\\c\r\n\t\x00\x1b[2J\x7f\u{85}\u{202e}\u{2028}é😀");
        assert_eq!(
            e,
            "\"a\\\"b\\\\c\\r\\n\\t\\u0000\\u001b[2J\\u007f\\u0085\\u202e\\u2028é😀\""
        );
        let back: String = serde_json::from_str(&e).unwrap();
        assert_eq!(
            back,
            "a\"b\\c\r\n\t\x00\x1b[2J\x7f\u{85}\u{202e}\u{2028}é😀"
        );
    }

    #[test]
    fn truncates_on_a_char_boundary_with_marker() {
        let long = "é".repeat(MAX_FIELD_BYTES); // 2 bytes each
        let back: String = serde_json::from_str(&enc(&long)).unwrap();
        assert!(back.ends_with(TRUNCATED_MARKER));
        assert_eq!(back.len(), MAX_FIELD_BYTES + TRUNCATED_MARKER.len());
        let exact = "x".repeat(MAX_FIELD_BYTES);
        assert_eq!(enc(&exact).len(), MAX_FIELD_BYTES + 2);
    }

    #[test]
    fn invalid_utf8_becomes_replacement() {
        let mut out = Vec::new();
        write_bytes_lossy(&mut out, b"/v1/\xff\xfe\r\nx");
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "/v1/\u{FFFD}\u{FFFD}\r\nx");
        assert!(!out.contains(&b'\n'));
    }

    proptest::proptest! {
        /// Any string comes back unchanged through a JSON parser, on one
        /// line with no raw control byte, whichever path escaped it.
        #[test]
        fn any_string_round_trips_on_one_safe_line(
            s in proptest::string::string_regex("(?s).{0,64}|[ -~]{0,64}").unwrap()
        ) {
            let e = enc(&s);
            let back: String = serde_json::from_str(&e).unwrap();
            proptest::prop_assert_eq!(&back, &s);
            proptest::prop_assert!(e.bytes().all(|b| b >= 0x20 && b != 0x7f));
            proptest::prop_assert_eq!(all_plain(s.as_bytes()), {
                let mut slow = Vec::new();
                escape_runs(&mut slow, &s);
                slow == s.as_bytes() && s.is_ascii()
            });
        }
    }

    #[test]
    fn numbers_and_hex() {
        let mut out = Vec::new();
        write_u64(&mut out, 0);
        out.push(b' ');
        write_u64(&mut out, u64::MAX);
        out.push(b' ');
        write_hex(&mut out, &[0x00, 0xab, 0xff]);
        assert_eq!(out, b"0 18446744073709551615 00abff");
        // longer than one 32-byte chunk
        let bytes: Vec<u8> = (0..=40).collect();
        let mut long = Vec::new();
        write_hex(&mut long, &bytes);
        let expect: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(long, expect.as_bytes());
    }
}
