//! Path canonicalization, run before any routing or permission decision.
//! The gateway authorizes the canonical path and forwards exactly that path
//! (SECURITY.md D1-D8, rule 1), so every ambiguity a server or proxy could
//! resolve differently is rejected rather than guessed.
//!
//! Rules (input: the request path without the query):
//! - must start with `/`; at most [`MAX_PATH_BYTES`] bytes;
//! - rejected with 400 `invalid_path`: dot segments (`.`, `..`, also when
//!   spelled `%2e`, `%2E`, `.%2e`, ...), empty segments (`//`), `\` raw or
//!   encoded, encoded `/` (`%2f`), `;` (path parameters), `#`, `?`, control
//!   bytes raw or encoded (`%00`, `%0a`, ...), `%25` (double encoding),
//!   malformed `%` escapes, characters RFC 3986 does not allow in a path,
//!   raw non-ASCII, and bytes that are not valid UTF-8 after decoding
//!   (including overlong forms such as `%c0%ae`);
//! - one trailing slash is stripped (`/v1/users/` -> `/v1/users`) and the
//!   stripped path is what is authorized and forwarded;
//! - case is kept: the cluster's paths are lowercase and matching is exact,
//!   so `/V1/Users` is a 404;
//! - percent-encodings are decoded exactly once: unreserved and other
//!   path-safe characters come out literal (`/v1/users/%31` -> `/v1/users/1`),
//!   the rest are re-encoded with uppercase hex (`%c3%a9` -> `%C3%A9`).
//!
//! When nothing changes the input is returned borrowed.

use std::borrow::Cow;

use crate::error::Reject;

/// Longest path accepted.
pub const MAX_PATH_BYTES: usize = 4096;

fn bad(description: &'static str) -> Reject {
    Reject::BadRequest {
        code: "invalid_path",
        description,
    }
}

/// Bytes that may appear literally in a canonical segment: RFC 3986
/// `pchar` minus `%` and minus `;` (we refuse path parameters). A table,
/// because this runs on every byte of every path.
const LITERAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b'='
                    | b':'
                    | b'@'
            );
        b += 1;
    }
    t
};

fn is_literal(b: u8) -> bool {
    LITERAL[usize::from(b)]
}

/// Why a raw (not encoded) byte is refused.
fn raw_refusal(b: u8) -> &'static str {
    match b {
        b'\\' => "backslash in path",
        b';' => "path parameters (';') are not accepted",
        b'#' => "fragment in path",
        b'?' => "query must be split off before the path is checked",
        0..=0x1f | 0x7f => "control byte in path",
        0x80..=0xff => "raw non-ASCII byte in path",
        _ => "character not allowed in a path",
    }
}

/// Why a decoded byte is refused, if it is.
fn decoded_refusal(b: u8) -> Option<&'static str> {
    match b {
        b'/' => Some("encoded '/' in path"),
        b'\\' => Some("encoded backslash in path"),
        b'%' => Some("double percent-encoding in path"),
        b';' | b'#' | b'?' => Some("encoded delimiter in path"),
        0..=0x1f | 0x7f => Some("encoded control byte in path"),
        _ => None,
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Canonicalizes a request path (see the module doc for the rules).
pub fn canonicalize(raw: &str) -> Result<Cow<'_, str>, Reject> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(bad("path must start with '/'"));
    }
    if bytes.len() > MAX_PATH_BYTES {
        return Err(bad("path too long"));
    }
    if raw == "/" {
        return Ok(Cow::Borrowed(raw));
    }
    let body = &raw[1..];
    let (body, stripped) = match body.strip_suffix('/') {
        Some(b) => (b, true),
        None => (body, false),
    };
    // Fast path: no escapes, so every segment is already in canonical form
    // once it passes the checks; nothing is allocated.
    if !body.contains('%') {
        check_plain(body)?;
        return Ok(if stripped {
            Cow::Owned(format!("/{body}"))
        } else {
            Cow::Borrowed(raw)
        });
    }
    let mut out = String::with_capacity(raw.len());
    let mut decoded = Vec::with_capacity(64);
    for seg in body.split('/') {
        decode_segment(seg, &mut decoded)?;
        out.push('/');
        for &b in &decoded {
            if is_literal(b) {
                out.push(char::from(b));
            } else {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xf)]));
            }
        }
    }
    if out == raw {
        Ok(Cow::Borrowed(raw))
    } else {
        Ok(Cow::Owned(out))
    }
}

fn check_dot_or_empty(seg: &[u8]) -> Result<(), Reject> {
    match seg {
        b"" => Err(bad("empty path segment ('//')")),
        b"." | b".." => Err(bad("dot segment in path")),
        _ => Ok(()),
    }
}

/// Checks an escape-free path body (without its leading `/`) in one pass.
fn check_plain(body: &str) -> Result<(), Reject> {
    let mut start = 0;
    for (i, &b) in body.as_bytes().iter().enumerate() {
        if b == b'/' {
            check_dot_or_empty(&body.as_bytes()[start..i])?;
            start = i + 1;
        } else if !is_literal(b) {
            return Err(bad(raw_refusal(b)));
        }
    }
    check_dot_or_empty(&body.as_bytes()[start..])
}

/// Decodes one segment into `out` (cleared first), refusing what the
/// module doc lists.
fn decode_segment(seg: &str, out: &mut Vec<u8>) -> Result<(), Reject> {
    out.clear();
    let b = seg.as_bytes();
    let mut i = 0;
    let mut high = false;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(bad("malformed percent-encoding in path"));
            };
            let v = (h << 4) | l;
            if let Some(why) = decoded_refusal(v) {
                return Err(bad(why));
            }
            high |= v >= 0x80;
            out.push(v);
            i += 3;
        } else if is_literal(c) {
            out.push(c);
            i += 1;
        } else {
            return Err(bad(raw_refusal(c)));
        }
    }
    check_dot_or_empty(out)?;
    if high && std::str::from_utf8(out).is_err() {
        return Err(bad("path is not valid UTF-8 after decoding"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str) -> String {
        canonicalize(p).unwrap().into_owned()
    }

    #[test]
    fn borrowed_when_unchanged() {
        assert!(matches!(canonicalize("/v1/bdbs/1"), Ok(Cow::Borrowed(_))));
        assert!(matches!(canonicalize("/"), Ok(Cow::Borrowed(_))));
        assert!(matches!(canonicalize("/v1/a%20b"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn decodes_once_and_normalizes_hex() {
        assert_eq!(ok("/v1/users/%31"), "/v1/users/1");
        assert_eq!(ok("/v1/x/%c3%a9"), "/v1/x/%C3%A9");
        assert_eq!(ok("/v1/x/a%2eb"), "/v1/x/a.b");
        assert_eq!(ok("/v1/users/"), "/v1/users");
    }

    #[test]
    fn rejects() {
        for p in [
            "",
            "v1/bdbs",
            "/v1/../users",
            "/v1/%2e%2e/users",
            "/v1/.%2E/x",
            "//v1",
            "/v1//x",
            "/v1/x//",
            "/v1%2fx",
            "/v1\\x",
            "/v1%5cx",
            "/v1;x=1",
            "/v1#f",
            "/v1%00",
            "/v1%0a",
            "/v1/%c0%ae",
            "/v1/%ff",
            "/v1/%25",
            "/v1/%2",
            "/v1/%zz",
            "/v1/a b",
            "/v1/\u{e9}",
        ] {
            assert!(canonicalize(p).is_err(), "{p:?} accepted");
        }
        assert!(canonicalize(&format!("/{}", "a".repeat(MAX_PATH_BYTES))).is_err());
    }
}
