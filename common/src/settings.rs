//! Layered configuration for agent and coordinator: built-in defaults, then a TOML file, then
//! environment variables (`<PREFIX>_KEY`, `__` between nested keys), then one validation pass
//! by the caller. Errors name the file, the key and the problem.

use std::path::Path;

use serde::de::DeserializeOwned;

#[derive(Debug, Clone, thiserror::Error)]
#[error("configuration{}: {message}", source_name.as_ref().map(|s| format!(" {s}")).unwrap_or_default())]
pub struct SettingsError {
    pub source_name: Option<String>,
    pub message: String,
}

impl SettingsError {
    pub fn key(key: &str, problem: impl std::fmt::Display) -> SettingsError {
        SettingsError { source_name: None, message: format!("key '{key}': {problem}") }
    }

    /// Names the file the configuration came from.
    pub fn in_file(mut self, file: Option<&Path>) -> SettingsError {
        if self.source_name.is_none() {
            self.source_name = file.map(|f| f.display().to_string());
        }
        self
    }
}

/// Loads a configuration: `file` (TOML) when given, then environment variables starting with
/// `env_prefix` (e.g. `NORRSKEN_AGENT` reads `NORRSKEN_AGENT_LISTEN`,
/// `NORRSKEN_AGENT_TLS__CERT`).
pub fn load<T: DeserializeOwned>(file: Option<&Path>, env_prefix: &str) -> Result<T, SettingsError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(SettingsError { source_name: Some(path.display().to_string()), message: "file not found".into() });
        }
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    builder = builder.add_source(
        config::Environment::with_prefix(env_prefix)
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("allowed_clients")
            .with_list_parse_key("admins"),
    );
    let source_name = file.map(|p| p.display().to_string());
    let built = builder.build().map_err(|e| SettingsError { source_name: source_name.clone(), message: e.to_string() })?;
    built.try_deserialize::<T>().map_err(|e| SettingsError { source_name, message: e.to_string() })
}

/// Loads from TOML text (tests, embedded examples).
pub fn from_toml<T: DeserializeOwned>(text: &str, name: &str) -> Result<T, SettingsError> {
    toml::from_str(text).map_err(|e| SettingsError { source_name: Some(name.to_string()), message: e.to_string() })
}
