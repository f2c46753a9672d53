//! The `Authorization` parser (`auth::basic::parse_basic`, SECURITY.md
//! C2-C6) on any header value, one or two of them.
//!
//! Input: byte 0 (bit 0) says whether the value is split in two headers at
//! the first 0x00 byte; the rest is the value. Checks:
//! - no panic, whatever the value;
//! - two `Authorization` headers are always refused (C4);
//! - accepted credentials: the value is at most 8 KiB, user and password
//!   are non-empty, the user has no colon and no control character, and
//!   encoding them again gives credentials that parse the same;
//! - the credentials' Debug output never shows the password.
#![no_main]

use base64_free::encode;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use regate::auth::basic::{parse_basic, MAX_AUTHORIZATION_BYTES};

/// Standard base64 with padding (kept here so the target needs no crate).
mod base64_free {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pub fn encode(input: &[u8]) -> String {
        let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
        for c in input.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, value @ ..] = data else {
        return;
    };
    let mut headers = HeaderMap::new();
    let two = flags & 1 == 1 && value.contains(&0);
    let parts: Vec<&[u8]> = if two {
        value.splitn(2, |&b| b == 0).collect()
    } else {
        vec![value]
    };
    for p in &parts {
        let Ok(v) = HeaderValue::from_bytes(p) else {
            return;
        };
        headers.append(AUTHORIZATION, v);
    }
    let result = parse_basic(&headers);
    if two {
        assert!(result.is_err(), "two Authorization headers accepted");
        return;
    }
    let Ok(creds) = result else {
        return;
    };
    let (user, password) = (creds.user(), creds.password());
    assert!(value.len() <= MAX_AUTHORIZATION_BYTES);
    assert!(!user.is_empty() && !password.is_empty());
    assert!(
        !user.contains(':') && !user.chars().any(char::is_control),
        "{user:?}"
    );
    let again = format!("Basic {}", encode(format!("{user}:{password}").as_bytes()));
    let mut h = HeaderMap::new();
    h.insert(AUTHORIZATION, HeaderValue::from_str(&again).expect("ascii"));
    match parse_basic(&h) {
        Ok(c) => assert!(c.user() == user && c.password() == password),
        Err(e) => panic!("re-encoded credentials refused: {e:?}"),
    }
    assert_eq!(
        format!("{creds:?}"),
        format!("Credentials {{ user: {user:?}, password: \"<redacted>\" }}")
    );
});
