//! Serde structs of the TOML config file.
