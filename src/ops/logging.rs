//! The process log: `[log] format` ("text" for people, "json" for Loki or
//! Elastic: one object per line) and `level` (an `EnvFilter` directive such
//! as "info" or "info,regate::upstream=debug"). `RUST_LOG`, when set, wins
//! over `level` (a one-off debugging session needs no config change).
//! Logs go to stderr; the audit trail is separate. Applied at start: a
//! reload does not change them.

use serde::Deserialize;

use crate::config::ConfigError;

/// Default filter. rustls warns once per handshake from a client that sends
/// an IP address as SNI (OpenSSL-based clients such as curl and wrk do): a
/// log line per connection that any client can trigger.
pub const DEFAULT_LEVEL: &str = "info,rustls::msgs::handshake=error";

/// `[log]` as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// "text" (default) or "json".
    #[serde(default = "default_format")]
    pub format: String,
    /// Filter directive; default "info" (rustls' per-handshake SNI warning
    /// silenced).
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: default_format(),
            level: default_level(),
        }
    }
}

fn default_format() -> String {
    "text".into()
}

fn default_level() -> String {
    DEFAULT_LEVEL.into()
}

/// The log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated `[log]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: DEFAULT_LEVEL.into(),
        }
    }
}

impl LogConfig {
    /// Checks the keys; errors name them (`log.format`, `log.level`).
    pub fn validate(&self) -> Result<LogSettings, Vec<ConfigError>> {
        let mut errs = Vec::new();
        let format = match self.format.as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            other => {
                errs.push(ConfigError::new(
                    "log.format",
                    format!("`{other}` is not \"text\" or \"json\""),
                ));
                None
            }
        };
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            errs.push(ConfigError::new(
                "log.level",
                format!("`{}` is not a level or filter directive: {e}", self.level),
            ));
        }
        match format {
            Some(format) if errs.is_empty() => Ok(LogSettings {
                format,
                level: self.level.clone(),
            }),
            _ => Err(errs),
        }
    }
}

/// Reads only `[log]` from a config file, so that logging is set up before
/// the rest is validated (whose problems are then reported by `load`).
/// Anything unreadable: the defaults.
pub fn settings_of(config: &std::path::Path) -> LogSettings {
    #[derive(Deserialize)]
    struct Partial {
        #[serde(default)]
        log: LogConfig,
    }
    let Ok(text) = std::fs::read_to_string(config) else {
        return LogSettings::default();
    };
    // the whole file is parsed loosely: unknown sections are `load`'s to report
    let Ok(table) = toml::from_str::<toml::Table>(&text) else {
        return LogSettings::default();
    };
    let log = table.get("log").cloned();
    let partial = match log {
        Some(v) => {
            let mut t = toml::Table::new();
            t.insert("log".into(), v);
            toml::Value::Table(t).try_into::<Partial>().ok()
        }
        None => None,
    };
    partial
        .and_then(|p| p.log.validate().ok())
        .unwrap_or_default()
}

/// Installs the global subscriber (once per process): `RUST_LOG` if set,
/// else `settings.level`; text (with colours on a terminal) or JSON lines.
pub fn init(settings: &LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LEVEL));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_key() {
        let s = toml::from_str::<LogConfig>("").unwrap().validate().unwrap();
        assert_eq!(s, LogSettings::default());
        let s = toml::from_str::<LogConfig>("format = \"json\"\nlevel = \"debug,hyper=info\"")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(s.format, LogFormat::Json);
        let errs = toml::from_str::<LogConfig>("format = \"xml\"\nlevel = \"info,=[\"")
            .unwrap()
            .validate()
            .unwrap_err();
        let keys: Vec<&str> = errs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["log.format", "log.level"]);
        assert!(toml::from_str::<LogConfig>("colour = true").is_err());
    }

    #[test]
    fn settings_of_reads_only_the_log_section() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("regate.toml");
        std::fs::write(&p, "[server]\nbogus = 1\n[log]\nformat = \"json\"\n").unwrap();
        assert_eq!(settings_of(&p).format, LogFormat::Json);
        std::fs::write(&p, "not toml [").unwrap();
        assert_eq!(settings_of(&p), LogSettings::default());
    }
}
