//! Configuration errors: each one names the file and, where it can, the line, column and key.
//! `ConfigErrors` carries every problem found in one pass, so a user fixes them all at once.

use std::path::PathBuf;

use decoders::channel_map::ChannelMapError;
use decoders::dbc::DbcError;
use decoders::frame::DefinitionError;

/// A configuration problem, located.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, unknown keys or wrong types.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What serde/toml said.
        message: String,
    },
    /// A value that parses but is not acceptable.
    #[error("{path}:{line}:{column}: [{key}] {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the key (of its table when the key is missing).
        line: usize,
        /// 1-based column.
        column: usize,
        /// The key, dotted (`source[1].can_bitrate`).
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A DBC file failed to parse.
    #[error("{0}")]
    Dbc(#[from] DbcError),
    /// A frame definition file failed to load.
    #[error("{0}")]
    Definition(#[from] DefinitionError),
    /// A TunerStudio INI line the bridge needs cannot be read (file:line:column).
    #[error("{0}")]
    Ini(#[from] decoders::ini::IniError),
    /// The channel map does not fit the DBCs.
    #[error("{path}:{line}:{column}: [car] {source}")]
    ChannelMap {
        /// The configuration file.
        path: PathBuf,
        /// 1-based line of the offending key (of `[car]` otherwise).
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        source: ChannelMapError,
    },
}

/// Every problem found in a configuration, in file order where known.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{}", lines.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}
