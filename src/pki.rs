//! Throwaway PKI for the demo and the tests: a CA and a server leaf for
//! `localhost` / `127.0.0.1`, minted with rcgen. Nothing here is used to
//! serve production traffic; production certificates come from `[tls]`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// A CA and one leaf signed by it, as PEM text.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Paths of a [`TestPki`] written to disk.
pub struct PkiFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestPki {
    /// A fresh CA and a leaf with SANs `localhost` and `127.0.0.1`
    /// (CA:FALSE, serverAuth), as webpki-based clients and sslyze require.
    pub fn generate() -> Result<Self, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "regate throwaway CA");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key)?;

        let leaf_key = KeyPair::generate()?;
        let mut leaf_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        leaf_params.distinguished_name = dn;
        // basicConstraints CA:FALSE as DER wants it: an empty SEQUENCE.
        // rcgen's `ExplicitNoCa` encodes the default `cA FALSE`, which strict
        // parsers refuse (Python cryptography, so sslyze's certificate scan).
        leaf_params.is_ca = IsCa::NoCa;
        let mut constraints = CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![0x30, 0x00]);
        constraints.set_criticality(true);
        leaf_params.custom_extensions.push(constraints);
        // RFC 5280 path validation (sslyze's) wants the issuer's key id
        leaf_params.use_authority_key_identifier_extension = true;
        // valid from a day ago for 90 days: Mozilla's TLS profiles refuse a
        // leaf living over 366 days (rcgen's default runs to the year 4096)
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        leaf_params.not_before = epoch + now.saturating_sub(Duration::from_secs(86_400));
        leaf_params.not_after = epoch + now + Duration::from_secs(90 * 86_400);
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let leaf = leaf_params.signed_by(&leaf_key, &ca_cert, &ca_key)?;

        Ok(TestPki {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        })
    }

    /// Writes `ca.pem`, `server.pem` and `server.key` into `dir`.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PkiFiles> {
        let files = PkiFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        std::fs::write(&files.ca, &self.ca_pem)?;
        std::fs::write(&files.cert, &self.cert_pem)?;
        std::fs::write(&files.key, &self.key_pem)?;
        Ok(files)
    }
}
