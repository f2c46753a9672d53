//! Reads what regate needs from a verified client certificate's DER: the
//! subject's common name, the subjectAltName email addresses and DNS
//! names, and the SHA-256 fingerprint ([`ClientCert`]). rustls and webpki
//! have already checked the chain; this is a small read-only DER walk that
//! never panics and gives up (fewer names) on anything it does not expect.

use sha2::{Digest as _, Sha256};

use crate::context::ClientCert;

/// OID 2.5.4.3 (commonName), DER-encoded value bytes.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// OID 2.5.29.17 (subjectAltName).
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// Reads the names and fingerprint of a certificate.
pub fn read(der: &[u8]) -> ClientCert {
    let digest = Sha256::digest(der);
    let mut sha256 = String::with_capacity(64);
    for b in digest {
        sha256.push(char::from(HEX[usize::from(b >> 4)]));
        sha256.push(char::from(HEX[usize::from(b & 15)]));
    }
    let (cn, sans) = names(der).unwrap_or_default();
    let subject = cn
        .clone()
        .or_else(|| sans.first().cloned())
        .unwrap_or_default();
    let names = cn.into_iter().chain(sans).collect();
    ClientCert {
        subject,
        names,
        sha256: sha256.into(),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// One DER element: (tag, contents, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = rest.get(..n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest.get(n..)?)
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// The elements of a constructed value.
fn elements(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, value, rest) = tlv(input)?;
        input = rest;
        Some((tag, value))
    })
}

/// A subject common name and the SAN names.
type Names = (Option<Box<str>>, Vec<Box<str>>);

/// Subject CN and SAN names (emails and DNS names, in their order).
fn names(der: &[u8]) -> Option<Names> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut fields = elements(tbs).peekable();
    // version [0] is optional
    if fields.peek().map(|(t, _)| *t) == Some(0xa0) {
        fields.next();
    }
    // serial, signature algorithm, issuer, validity, subject
    let subject = fields.nth(4)?.1;
    let cn = elements(subject)
        .flat_map(|(_, set)| elements(set))
        .find_map(|(_, atv)| {
            let mut parts = elements(atv);
            let (_, oid) = parts.next()?;
            let (_, value) = parts.next()?;
            (oid == OID_CN).then(|| text(value)).flatten()
        });
    let mut sans = Vec::new();
    for (tag, exts) in fields {
        if tag != 0xa3 {
            continue;
        }
        let (_, list, _) = tlv(exts)?;
        for (_, ext) in elements(list) {
            let mut parts = elements(ext).peekable();
            let Some((_, oid)) = parts.next() else {
                continue;
            };
            if oid != OID_SAN {
                continue;
            }
            // critical BOOLEAN is optional
            if parts.peek().map(|(t, _)| *t) == Some(0x01) {
                parts.next();
            }
            let Some((_, octets)) = parts.next() else {
                continue;
            };
            let Some((_, general_names, _)) = tlv(octets) else {
                continue;
            };
            for (tag, value) in elements(general_names) {
                // [1] rfc822Name, [2] dNSName (IMPLICIT IA5String)
                if tag == 0x81 || tag == 0x82 {
                    if let Some(t) = text(value) {
                        sans.push(t);
                    }
                }
            }
        }
    }
    Some((cn, sans))
}

/// A name's text when it is valid UTF-8 without control characters.
fn text(value: &[u8]) -> Option<Box<str>> {
    let s = std::str::from_utf8(value).ok()?;
    (!s.is_empty() && !s.chars().any(char::is_control)).then(|| s.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    #[test]
    fn reads_cn_sans_and_fingerprint() {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["host.example".to_string()]).unwrap();
        p.subject_alt_names
            .push(SanType::Rfc822Name("ops@example.com".try_into().unwrap()));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Example");
        dn.push(DnType::CommonName, "ops-robot");
        p.distinguished_name = dn;
        let cert = p.self_signed(&key).unwrap();
        let c = read(cert.der());
        assert_eq!(&*c.subject, "ops-robot");
        let names: Vec<&str> = c.names.iter().map(|n| &**n).collect();
        assert_eq!(names, ["ops-robot", "host.example", "ops@example.com"]);
        assert_eq!(c.sha256.len(), 64);
        assert!(c.matches("OPS@example.com") && !c.matches("ops"));
    }

    #[test]
    fn garbage_gives_no_names_and_no_panic() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x03, 0x30, 0x01],
        ] {
            let c = read(bad);
            assert!(c.names.is_empty());
            assert_eq!(c.sha256.len(), 64);
        }
    }
}
