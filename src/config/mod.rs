//! Configuration: `file.rs` holds the serde structs of the TOML file
//! (unknown keys are errors); this module validates them into the domain
//! [`Config`] the gateway runs from. Nothing here binds a port: a config
//! that fails validation never reaches the listener.

pub mod duration;
pub mod file;

use std::fmt;

/// One problem in a config file, naming the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key, e.g. `tls.cert` or `upstream.nodes[1]`.
    pub key: String,
    /// What is wrong, without secrets.
    pub problem: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}
