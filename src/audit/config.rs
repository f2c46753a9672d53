//! The `[audit]` config section: [`AuditConfig`] as written in the file
//! (unknown keys are errors) and [`AuditConfig::validate`], which checks
//! every key and yields the [`AuditSettings`] the writer runs from. Nothing
//! here opens the log file: `AuditLog::open` does.
//!
//! ```toml
//! [audit]
//! enabled = true                        # default true
//! sink = "file"                         # "file" (default) or "stdout"
//! path = "/var/log/regate/audit.jsonl"  # default; relative to the config file
//! max_bytes = 104857600                 # rotate past this size (default 100 MiB)
//! keep = 10                             # rotated files kept (default 10)
//! queue_capacity = 8192                 # records waiting for the writer
//! on_full = "block"                     # "block" (default) or "drop"
//! fsync = "1s"                          # an interval (default "1s") or "always"
//! required = false                      # true: answer 503 while unwritable
//! body_digest = false                   # SHA-256 of write-request bodies
//! signing_key = "audit-signing.key"     # Ed25519 PKCS#8 PEM: signed checkpoints (default none)
//! checkpoint_interval = "1s"            # at most this long between checkpoints
//! checkpoint_records = 1000             # at most this many records between checkpoints
//! checkpoint_sink = "stderr"            # "stderr", "file:PATH", "syslog" (127.0.0.1:601) or "syslog:IP:PORT"
//! forward_secure = false                # evolving MAC key per checkpoint (<signing_key>.fss)
//! ```

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::config::duration::parse_duration;
use crate::config::ConfigError;

use super::anchor::AnchorSettings;
use super::seal::Sealer;

/// `[audit]` as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Write an audit trail at all. Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `"file"` (default) or `"stdout"` (for journald or a container log
    /// driver; no rotation, and the chain restarts with each process).
    #[serde(default = "default_sink")]
    pub sink: String,
    /// The log file for `sink = "file"`. Default
    /// `/var/log/regate/audit.jsonl`; a relative path resolves against the
    /// config file's directory. Its directory must exist.
    #[serde(default = "default_path")]
    pub path: String,
    /// Rotate when the file would grow past this many bytes. Default
    /// 104857600 (100 MiB); at least 4096.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept (`audit.jsonl.1` newest ... `.N` oldest).
    /// Default 10; 0 keeps none. At most 1000.
    #[serde(default = "default_keep")]
    pub keep: u32,
    /// Records that may wait for the writer. Default 8192; 1 to 1048576.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// When the queue is full: `"block"` (default: the request waits, no
    /// record is lost) or `"drop"` (the record is dropped and counted).
    #[serde(default = "default_on_full")]
    pub on_full: String,
    /// `"always"` (sync after every write batch, before more is taken) or
    /// an interval such as `"1s"` (default) or `"250ms"`, at most `"1h"`.
    #[serde(default = "default_fsync")]
    pub fsync: String,
    /// When true, a failing sink makes `AuditLog::healthy()` false and the
    /// gateway answers 503 (`audit_unavailable`) instead of serving
    /// unaudited. Default `false`: serve, count failures, alert.
    #[serde(default)]
    pub required: bool,
    /// Record the SHA-256 of write-request bodies (`body_sha256`). Default `false`.
    #[serde(default)]
    pub body_digest: bool,
    /// An Ed25519 private key (PKCS#8 PEM, from `regate audit keygen`):
    /// the writer appends signed checkpoints. Default none (unkeyed chain).
    #[serde(default)]
    pub signing_key: Option<String>,
    /// At most this long between a record and the checkpoint that seals
    /// it. Default `"1s"`; from `"10ms"` to `"1h"`.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: String,
    /// At most this many records between two checkpoints. Default 1000;
    /// 1 to 1000000.
    #[serde(default = "default_checkpoint_records")]
    pub checkpoint_records: u64,
    /// Where checkpoints are copied: `"stderr"` (default: the service log),
    /// `"file:PATH"` (relative to the config file), or `"syslog"` /
    /// `"syslog:IP:PORT"` (RFC 5424 over TCP; default 127.0.0.1:601).
    #[serde(default = "default_checkpoint_sink")]
    pub checkpoint_sink: String,
    /// Evolve a MAC key at every checkpoint and forget the old one (state
    /// in `<signing_key>.fss`, written by `audit keygen`). Default false.
    #[serde(default)]
    pub forward_secure: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            sink: default_sink(),
            path: default_path(),
            max_bytes: default_max_bytes(),
            keep: default_keep(),
            queue_capacity: default_queue_capacity(),
            on_full: default_on_full(),
            fsync: default_fsync(),
            required: false,
            body_digest: false,
            signing_key: None,
            checkpoint_interval: default_checkpoint_interval(),
            checkpoint_records: default_checkpoint_records(),
            checkpoint_sink: default_checkpoint_sink(),
            forward_secure: false,
        }
    }
}

fn default_checkpoint_interval() -> String {
    "1s".into()
}
fn default_checkpoint_records() -> u64 {
    1000
}
fn default_checkpoint_sink() -> String {
    "stderr".into()
}
fn yes() -> bool {
    true
}
fn default_sink() -> String {
    "file".into()
}
fn default_path() -> String {
    "/var/log/regate/audit.jsonl".into()
}
fn default_max_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_keep() -> u32 {
    10
}
fn default_queue_capacity() -> usize {
    8192
}
fn default_on_full() -> String {
    "block".into()
}
fn default_fsync() -> String {
    "1s".into()
}

/// Where records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSettings {
    /// A file with size-based rotation.
    File {
        path: PathBuf,
        max_bytes: u64,
        keep: u32,
    },
    /// The process's standard output.
    Stdout,
}

/// What to do when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    Block,
    Drop,
}

/// When written records are synced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    Always,
    Every(Duration),
}

/// The validated `[audit]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub enabled: bool,
    pub sink: SinkSettings,
    pub queue_capacity: usize,
    pub on_full: OnFull,
    pub fsync: Fsync,
    pub required: bool,
    pub body_digest: bool,
    /// Signed checkpoints, when `signing_key` is set.
    pub seal: Option<SealSettings>,
}

/// How checkpoints are made (`signing_key` and the `checkpoint_*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealSettings {
    pub sealer: Arc<Sealer>,
    pub interval: Duration,
    pub records: u64,
    pub anchor: AnchorSettings,
    /// The forward-secure state file (`forward_secure = true`).
    pub forward: Option<PathBuf>,
}

impl AuditSettings {
    /// A file sink with every other key at its default (tests, tools).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        AuditSettings {
            enabled: true,
            sink: SinkSettings::File {
                path: path.into(),
                max_bytes: default_max_bytes(),
                keep: default_keep(),
            },
            queue_capacity: default_queue_capacity(),
            on_full: OnFull::Block,
            fsync: Fsync::Every(Duration::from_secs(1)),
            required: false,
            body_digest: false,
            seal: None,
        }
    }
}

impl AuditConfig {
    /// Checks every key (all problems at once) and resolves `path`
    /// against `base_dir`, the config file's directory.
    pub fn validate(&self, base_dir: &Path) -> Result<AuditSettings, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let sink = match self.sink.as_str() {
            "stdout" => Some(SinkSettings::Stdout),
            "file" => self.file_sink(base_dir, &mut errs),
            other => {
                errs.push(ConfigError::new(
                    "audit.sink",
                    format!("`{other}` is not a sink (use \"file\" or \"stdout\")"),
                ));
                None
            }
        };
        if self.queue_capacity == 0 || self.queue_capacity > 1 << 20 {
            errs.push(ConfigError::new(
                "audit.queue_capacity",
                "must be between 1 and 1048576",
            ));
        }
        let on_full = match self.on_full.as_str() {
            "block" => OnFull::Block,
            "drop" => OnFull::Drop,
            other => {
                errs.push(ConfigError::new(
                    "audit.on_full",
                    format!("`{other}` is not a policy (use \"block\" or \"drop\")"),
                ));
                OnFull::Block
            }
        };
        let fsync = match self.fsync.as_str() {
            "always" => Fsync::Always,
            text => match parse_duration(text) {
                Ok(d) if d.is_zero() || d > Duration::from_secs(3600) => {
                    errs.push(ConfigError::new(
                        "audit.fsync",
                        "the interval must be more than 0 and at most 1h (or \"always\")",
                    ));
                    Fsync::Always
                }
                Ok(d) => Fsync::Every(d),
                Err(e) => {
                    errs.push(ConfigError::new(
                        "audit.fsync",
                        format!("{e}, or \"always\""),
                    ));
                    Fsync::Always
                }
            },
        };
        let seal = self.seal(base_dir, &mut errs);
        match (sink, errs.is_empty()) {
            (Some(sink), true) => Ok(AuditSettings {
                enabled: self.enabled,
                sink,
                queue_capacity: self.queue_capacity,
                on_full,
                fsync,
                required: self.required,
                body_digest: self.body_digest,
                seal,
            }),
            _ => Err(errs),
        }
    }

    /// The checkpoint keys; `None` without `signing_key` (the others are
    /// still checked, so a typo shows before the key is added).
    fn seal(&self, base_dir: &Path, errs: &mut Vec<ConfigError>) -> Option<SealSettings> {
        let interval = match parse_duration(&self.checkpoint_interval) {
            Ok(d) if d >= Duration::from_millis(10) && d <= Duration::from_secs(3600) => Some(d),
            Ok(_) => {
                errs.push(ConfigError::new(
                    "audit.checkpoint_interval",
                    "must be between 10ms and 1h",
                ));
                None
            }
            Err(e) => {
                errs.push(ConfigError::new("audit.checkpoint_interval", e.to_string()));
                None
            }
        };
        if !(1..=1_000_000).contains(&self.checkpoint_records) {
            errs.push(ConfigError::new(
                "audit.checkpoint_records",
                "must be between 1 and 1000000",
            ));
        }
        let anchor = match self.checkpoint_sink.as_str() {
            "stderr" => Some(AnchorSettings::Stderr),
            "syslog" => Some(AnchorSettings::Syslog(SocketAddr::from((
                [127, 0, 0, 1],
                601,
            )))),
            other if other.starts_with("syslog:") => match other["syslog:".len()..].parse() {
                Ok(addr) => Some(AnchorSettings::Syslog(addr)),
                Err(_) => {
                    errs.push(ConfigError::new(
                        "audit.checkpoint_sink",
                        format!("`{other}`: after \"syslog:\" put the collector's IP:PORT (RFC 5424 over TCP)"),
                    ));
                    None
                }
            },
            other => match other.strip_prefix("file:") {
                Some(p) if !p.trim().is_empty() => {
                    let path = base_dir.join(p);
                    match path.parent() {
                        Some(dir) if dir.is_dir() && !path.is_dir() => {
                            Some(AnchorSettings::File(path))
                        }
                        _ => {
                            errs.push(ConfigError::new(
                                "audit.checkpoint_sink",
                                format!(
                                    "{} is not a file in an existing directory",
                                    path.display()
                                ),
                            ));
                            None
                        }
                    }
                }
                _ => {
                    errs.push(ConfigError::new(
                        "audit.checkpoint_sink",
                        format!("`{other}` is not a checkpoint sink (use \"stderr\", \"file:PATH\", \"syslog\" or \"syslog:IP:PORT\")"),
                    ));
                    None
                }
            },
        };
        let Some(key) = self.signing_key.as_deref() else {
            if self.forward_secure {
                errs.push(ConfigError::new(
                    "audit.forward_secure",
                    "needs signing_key (forward-secure MACs ride on signed checkpoints)",
                ));
            }
            return None;
        };
        let key_path = base_dir.join(key);
        let forward = match self.forward_secure {
            false => Some(None),
            true => {
                let state = super::forward::state_path(&key_path);
                match super::forward::load(&state) {
                    Ok(_) => Some(Some(state)),
                    Err(e) => {
                        errs.push(ConfigError::new(
                            "audit.forward_secure",
                            format!("{e} (written by `regate audit keygen` next to the key)"),
                        ));
                        None
                    }
                }
            }
        };
        let sealer = match std::fs::metadata(&key_path) {
            Ok(m) if m.permissions().mode() & 0o007 != 0 => {
                errs.push(ConfigError::new(
                    "audit.signing_key",
                    format!(
                        "{} is readable by every user (mode {:o}); chmod 600 it",
                        key_path.display(),
                        m.permissions().mode() & 0o777
                    ),
                ));
                None
            }
            Ok(_) => Sealer::load(&key_path)
                .map_err(|e| errs.push(ConfigError::new("audit.signing_key", e)))
                .ok(),
            Err(e) => {
                errs.push(ConfigError::new(
                    "audit.signing_key",
                    format!("{}: {e}", key_path.display()),
                ));
                None
            }
        };
        Some(SealSettings {
            sealer: Arc::new(sealer?),
            interval: interval?,
            records: self.checkpoint_records,
            anchor: anchor?,
            forward: forward?,
        })
    }

    fn file_sink(&self, base_dir: &Path, errs: &mut Vec<ConfigError>) -> Option<SinkSettings> {
        let before = errs.len();
        if self.max_bytes < 4096 {
            errs.push(ConfigError::new("audit.max_bytes", "must be at least 4096"));
        }
        if self.keep > 1000 {
            errs.push(ConfigError::new("audit.keep", "must be at most 1000"));
        }
        let path = base_dir.join(&self.path);
        if self.path.trim().is_empty() {
            errs.push(ConfigError::new("audit.path", "must not be empty"));
        } else if path.is_dir() {
            errs.push(ConfigError::new(
                "audit.path",
                format!("{} is a directory; name a file", path.display()),
            ));
        } else {
            match path.parent() {
                Some(dir) if dir.is_dir() => {}
                _ => errs.push(ConfigError::new(
                    "audit.path",
                    format!("the directory of {} does not exist", path.display()),
                )),
            }
        }
        (errs.len() == before).then_some(SinkSettings::File {
            path,
            max_bytes: self.max_bytes,
            keep: self.keep,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AuditConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_resolve_relative_path() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = parse("path = \"audit.jsonl\"").unwrap();
        let s = cfg.validate(dir.path()).unwrap();
        assert_eq!(
            s.sink,
            SinkSettings::File {
                path: dir.path().join("audit.jsonl"),
                max_bytes: 100 * 1024 * 1024,
                keep: 10
            }
        );
        assert_eq!(s.queue_capacity, 8192);
        assert_eq!(s.on_full, OnFull::Block);
        assert_eq!(s.fsync, Fsync::Every(Duration::from_secs(1)));
        assert!(s.enabled && !s.required && !s.body_digest);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(parse("requried = true").is_err());
    }

    #[test]
    fn every_bad_key_is_named() {
        let cfg = parse(
            "sink = \"file\"\npath = \"/nonexistent-dir/x/audit.jsonl\"\nmax_bytes = 10\nkeep = 5000\nqueue_capacity = 0\non_full = \"panic\"\nfsync = \"soon\"",
        )
        .unwrap();
        let errs = cfg.validate(Path::new("/")).unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "audit.max_bytes",
                "audit.keep",
                "audit.path",
                "audit.queue_capacity",
                "audit.on_full",
                "audit.fsync"
            ]
        );
        let bad_sink = parse("sink = \"syslog\"").unwrap();
        assert_eq!(
            bad_sink.validate(Path::new("/")).unwrap_err()[0].key,
            "audit.sink"
        );
    }

    #[test]
    fn every_bad_checkpoint_key_is_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keys = |text: &str| -> Vec<String> {
            let text = format!("path = \"audit.jsonl\"\n{text}");
            match parse(&text).unwrap().validate(dir.path()) {
                Ok(_) => Vec::new(),
                Err(errs) => errs.into_iter().map(|e| e.key).collect(),
            }
        };
        assert_eq!(
            keys(
                "checkpoint_interval = \"1ms\"\ncheckpoint_records = 0\ncheckpoint_sink = \"ftp\""
            ),
            [
                "audit.checkpoint_interval",
                "audit.checkpoint_records",
                "audit.checkpoint_sink"
            ]
        );
        assert_eq!(
            keys("checkpoint_sink = \"syslog:nowhere\""),
            ["audit.checkpoint_sink"]
        );
        assert_eq!(
            keys("checkpoint_sink = \"file:/nonexistent-dir/cp\""),
            ["audit.checkpoint_sink"]
        );
        assert_eq!(keys("forward_secure = true"), ["audit.forward_secure"]);
        assert_eq!(keys("signing_key = \"missing.key\""), ["audit.signing_key"]);
        let k = super::super::seal::keygen(dir.path()).unwrap();
        let key = format!("signing_key = \"{}\"", k.private.display());
        assert!(keys(&format!(
            "{key}\nforward_secure = true\ncheckpoint_sink = \"syslog\""
        ))
        .is_empty());
        std::fs::set_permissions(&k.private, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(keys(&key), ["audit.signing_key"]);
        std::fs::set_permissions(&k.private, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::remove_file(&k.forward).unwrap();
        assert_eq!(
            keys(&format!("{key}\nforward_secure = true")),
            ["audit.forward_secure"]
        );
        // the public key is not a signing key
        let public = format!("signing_key = \"{}\"", k.public.display());
        assert_eq!(keys(&public), ["audit.signing_key"]);
    }

    #[test]
    fn stdout_and_always() {
        let cfg = parse("sink = \"stdout\"\nfsync = \"always\"\non_full = \"drop\"").unwrap();
        let s = cfg.validate(Path::new("/")).unwrap();
        assert_eq!(s.sink, SinkSettings::Stdout);
        assert_eq!(s.fsync, Fsync::Always);
        assert_eq!(s.on_full, OnFull::Drop);
    }
}
