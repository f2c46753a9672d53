//! Parsing of the HTTP Basic `Authorization` header (RFC 7617) into
//! [`Credentials`]. Pure and synchronous: no hashing, no lookups. It must
//! never panic on client bytes, must check the size before decoding, and must
//! never put the header value or the password into an error or a log.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::error::Reject;

/// Largest `Authorization` value accepted; larger ones get 431 before any
/// decoding (SECURITY.md C5).
pub const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;

/// A user name and password taken from a Basic `Authorization` header.
///
/// `Debug` never shows the password. The user name is kept exactly as sent:
/// no case folding and no Unicode normalization (SECURITY.md C6).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `user:password`, one allocation: the decoded header as it came.
    text: String,
    /// Where the user name ends (the first colon, or the separator `new`
    /// put there).
    colon: usize,
}

impl Credentials {
    /// Builds credentials directly (tests, the CLI).
    pub fn new(user: impl Into<String>, password: impl AsRef<str>) -> Self {
        let mut text = user.into();
        let colon = text.len();
        text.push(':');
        text.push_str(password.as_ref());
        Credentials { text, colon }
    }

    /// The user name, exact bytes as sent.
    pub fn user(&self) -> &str {
        self.text.get(..self.colon).unwrap_or_default()
    }

    /// The password. Never log it.
    pub fn password(&self) -> &str {
        self.text.get(self.colon + 1..).unwrap_or_default()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user())
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The user name of Basic credentials that failed, for the audit record
/// of a refused login: what precedes the first colon, even when it holds
/// control characters or invalid UTF-8 (the record escapes it). `None`
/// without exactly one Basic header, or without a colon (the text could
/// then be a password). The password is dropped here and goes nowhere.
pub fn attempted_user(headers: &HeaderMap) -> Option<Box<str>> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next()?.as_bytes();
    if values.next().is_some() || value.len() > MAX_AUTHORIZATION_BYTES {
        return None;
    }
    let decoded = STANDARD.decode(basic_token(value)?).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    (colon > 0).then(|| String::from_utf8_lossy(&decoded[..colon]).into())
}

/// Extracts Basic credentials from the request headers.
///
/// - no `Authorization` header: [`Reject::Unauthorized`];
/// - more than one: [`Reject::BadRequest`] (never "take the first", C4);
/// - a value over [`MAX_AUTHORIZATION_BYTES`]: [`Reject::HeaderTooLarge`],
///   checked before anything is decoded (C5);
/// - a scheme other than `Basic` (compared case-insensitively), bad base64,
///   invalid UTF-8, no colon, an empty user or password, or control
///   characters in the user name: [`Reject::Unauthorized`] (C2, C3, C6).
///
/// The password is everything after the **first** colon, so `user:pa:ss`
/// yields the password `pa:ss`.
pub fn parse_basic(headers: &HeaderMap) -> Result<Credentials, Reject> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(Reject::Unauthorized)?;
    if values.next().is_some() {
        return Err(Reject::BadRequest {
            code: "duplicate_authorization",
            description: "more than one Authorization header",
        });
    }
    let bytes = value.as_bytes();
    if bytes.len() > MAX_AUTHORIZATION_BYTES {
        return Err(Reject::HeaderTooLarge);
    }
    let token = basic_token(bytes).ok_or(Reject::Unauthorized)?;
    let decoded = STANDARD.decode(token).map_err(|_| Reject::Unauthorized)?;
    let text = String::from_utf8(decoded).map_err(|_| Reject::Unauthorized)?;
    let colon = text.find(':').ok_or(Reject::Unauthorized)?;
    let credentials = Credentials { text, colon };
    let (user, password) = (credentials.user(), credentials.password());
    if user.is_empty() || password.is_empty() || user.chars().any(char::is_control) {
        return Err(Reject::Unauthorized);
    }
    Ok(credentials)
}

/// Returns the token68 after a case-insensitive `Basic` scheme and one or
/// more spaces, or `None` for any other shape.
fn basic_token(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"basic";
    let scheme = value.get(..SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let rest = value.get(SCHEME.len()..)?;
    let token = rest.strip_prefix(b" ")?;
    let start = token.iter().position(|b| *b != b' ')?;
    token.get(start..)
}

/// Encodes credentials as a Basic `Authorization` value (service account,
/// tests). The result must be marked sensitive by whoever puts it in a
/// header map.
pub fn encode_basic(user: &str, password: &str) -> String {
    let mut raw = Vec::with_capacity(user.len() + password.len() + 1);
    raw.extend_from_slice(user.as_bytes());
    raw.push(b':');
    raw.extend_from_slice(password.as_bytes());
    format!("Basic {}", STANDARD.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempted_user_keeps_the_name_and_never_the_password() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(AUTHORIZATION, v.parse().unwrap());
            m
        };
        let enc = |s: &[u8]| format!("Basic {}", STANDARD.encode(s));
        assert_eq!(attempted_user(&h(&enc(b"bob:pw"))).as_deref(), Some("bob"));
        assert_eq!(
            attempted_user(&h(&enc(b"ev\x1bil:pw"))).as_deref(),
            Some("ev\u{1b}il")
        );
        assert_eq!(attempted_user(&h(&enc(b"just-a-password"))), None);
        assert_eq!(attempted_user(&h(&enc(b":pw"))), None);
        assert_eq!(attempted_user(&h("Bearer abc")), None);
        assert_eq!(attempted_user(&HeaderMap::new()), None);
    }
    use http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn basic_of(raw: &[u8]) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(raw)).into_bytes()
    }

    #[test]
    fn well_formed() {
        let c = parse_basic(&headers(&[&basic_of(b"alice:secret")])).unwrap();
        assert_eq!((c.user(), c.password()), ("alice", "secret"));
    }

    #[test]
    fn scheme_is_case_insensitive() {
        let v = format!("bAsIc {}", STANDARD.encode("alice:secret"));
        assert!(parse_basic(&headers(&[v.as_bytes()])).is_ok());
        let v = format!("Basic   {}", STANDARD.encode("alice:secret"));
        assert!(parse_basic(&headers(&[v.as_bytes()])).is_ok());
    }

    #[test]
    fn debug_hides_password() {
        let c = Credentials::new("alice", "hunter2");
        let shown = format!("{c:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn encode_round_trips() {
        let v = encode_basic("u", "p:q");
        let c = parse_basic(&headers(&[v.as_bytes()])).unwrap();
        assert_eq!((c.user(), c.password()), ("u", "p:q"));
    }

    #[test]
    fn odd_shapes_are_unauthorized() {
        for v in [
            &b"Basic"[..],
            b"Basic ",
            b"Basicx YWxpY2U6c2VjcmV0",
            b"Basic\tYWxpY2U6c2VjcmV0",
            b"Bearer abc",
            b"",
        ] {
            assert_eq!(parse_basic(&headers(&[v])), Err(Reject::Unauthorized));
        }
    }
}
