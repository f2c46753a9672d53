//! The path canonicalizer (`policy::canonical::canonicalize`, SECURITY.md
//! D1-D8) and the route matcher (`Policy::resolve` over the built-in
//! redis-enterprise profile), on any request path.
//!
//! Input: byte 0 picks the method and an `x-api-version` value; the rest is
//! the path. Checks:
//! - no panic, whatever the path;
//! - a canonical path is a fixed point (canonicalizing it again changes
//!   nothing), starts with `/`, has no empty, `.` or `..` segment, no `\`,
//!   `;`, `?`, `#`, control byte, `%2F`/`%5C`/`%25` escape, no trailing
//!   slash, and is no longer than the input;
//! - a matched route is the path: the route's template with the captured
//!   values put back is exactly the canonical path, and the route's method
//!   is the request's.
#![no_main]

use std::sync::OnceLock;

use http::Method;
use libfuzzer_sys::fuzz_target;
use regate::policy::canonicalize;
use regate::policy::Policy;

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| Policy::builtin().unwrap_or_else(|e| panic!("built-in profile: {e:?}")))
}

const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get",
];
const VERSIONS: [Option<&[u8]>; 8] = [
    None,
    Some(b"v1"),
    Some(b"1"),
    Some(b"v2"),
    Some(b"2"),
    Some(b"V1"),
    Some(b""),
    Some(b"v1, v2"),
];

fuzz_target!(|data: &[u8]| {
    let [sel, path @ ..] = data else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(path) else {
        return;
    };
    let Ok(canon) = canonicalize(raw) else {
        return;
    };
    let c: &str = &canon;
    assert!(c.len() <= raw.len(), "{raw:?} grew into {c:?}");
    assert!(c.starts_with('/'), "{c:?}");
    match canonicalize(c) {
        Ok(again) => assert_eq!(&*again, c, "not a fixed point: {raw:?}"),
        Err(e) => panic!("{raw:?} -> {c:?}, refused on the second pass: {e:?}"),
    }
    if c != "/" {
        assert!(!c.ends_with('/'), "{c:?}");
        for seg in c[1..].split('/') {
            assert!(
                !seg.is_empty() && seg != "." && seg != "..",
                "{raw:?} -> {c:?}"
            );
        }
    }
    for bad in ["\\", ";", "?", "#", "%2F", "%2f", "%5C", "%5c", "%25"] {
        assert!(!c.contains(bad), "{raw:?} -> {c:?} holds {bad:?}");
    }
    assert!(!c.bytes().any(|b| b.is_ascii_control()), "{c:?}");

    let method = Method::from_bytes(METHODS[usize::from(sel & 7)].as_bytes()).expect("method");
    let version = VERSIONS[usize::from(sel >> 5)];
    let Ok(m) = policy().resolve(&method, c, version) else {
        return;
    };
    assert_eq!(m.method(), &method);
    let mut rebuilt = m.template.to_owned();
    for (name, value) in m.params() {
        assert!(
            !value.is_empty() && !value.contains('/'),
            "{name}={value:?}"
        );
        rebuilt = rebuilt.replacen(&format!("{{{name}}}"), value, 1);
    }
    assert_eq!(
        rebuilt,
        c,
        "template {} with {:?}",
        m.template,
        m.params().collect::<Vec<_>>()
    );
});
