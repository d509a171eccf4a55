//! The TOML schema of frame definition files, as serde types: what an engineer writes.
//!
//! Deserialisation only checks shapes and names (unknown keys, types and endiannesses are
//! rejected here, with toml's span); [`super::definition`] checks the meaning and turns
//! these into a [`super::FrameDefinition`]. Spans are kept where a later check needs a line.

use serde::Deserialize;
use toml::Spanned;

use super::crc::CheckKind;
use super::framing::LengthUnit;
use super::value::{Endian, ValueType};

/// A whole definition file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub frame: Spanned<FrameConfig>,
    #[serde(default, rename = "message")]
    pub messages: Vec<MessageConfig>,
}

/// `[frame]`: names and the envelope.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FrameConfig {
    pub name: String,
    pub application: Spanned<String>,
    #[serde(default)]
    pub description: String,
    /// Default byte order of every field.
    #[serde(default)]
    pub endian: Endian,
    pub sync: Option<Spanned<Vec<u8>>>,
    pub fixed_length: Option<Spanned<usize>>,
    pub max_length: Option<usize>,
    pub length: Option<Spanned<LengthConfig>>,
    pub counter: Option<Spanned<IntConfig>>,
    pub message_id: Option<Spanned<IntConfig>>,
    pub check: Option<Spanned<CheckConfig>>,
}

/// `[frame.length]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LengthConfig {
    pub offset: usize,
    #[serde(rename = "type")]
    pub ty: ValueType,
    pub endian: Option<Endian>,
    pub counts: LengthUnit,
    #[serde(default)]
    pub header: usize,
    #[serde(default)]
    pub trailer: usize,
}

/// `[frame.counter]`, `[frame.message_id]`: an unsigned integer at a fixed offset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IntConfig {
    pub offset: usize,
    #[serde(rename = "type")]
    pub ty: ValueType,
    pub endian: Option<Endian>,
}

/// `[frame.check]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckConfig {
    pub algorithm: CheckKind,
    #[serde(default)]
    pub start: i64,
    pub end: i64,
    pub at: i64,
    pub endian: Option<Endian>,
}

/// `[[message]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessageConfig {
    pub name: Spanned<String>,
    pub id: Option<Spanned<u64>>,
    /// Expected frame length of this message; fields must fit inside.
    pub length: Option<usize>,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "field")]
    pub fields: Vec<FieldConfig>,
    #[serde(default, rename = "array")]
    pub arrays: Vec<ArrayConfig>,
}

/// `[[message.field]]` and `[[message.array.field]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldConfig {
    pub name: Spanned<String>,
    pub offset: Spanned<usize>,
    #[serde(rename = "type")]
    pub ty: ValueType,
    pub endian: Option<Endian>,
    pub bit_offset: Option<Spanned<u8>>,
    pub bit_width: Option<Spanned<u8>>,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub bias: f64,
    #[serde(default)]
    pub unit: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub publish: bool,
    /// Element count: the field repeats `count` times, `stride` bytes apart.
    pub count: Option<Spanned<usize>>,
    pub stride: Option<usize>,
    pub names: Option<Vec<String>>,
}

/// `[[message.array]]`: records of several fields repeated `count` times.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArrayConfig {
    pub name: Spanned<String>,
    pub offset: usize,
    pub count: Spanned<usize>,
    pub stride: Spanned<usize>,
    /// Name of a message field whose value picks the one record to publish.
    pub select: Option<Spanned<String>>,
    pub names: Option<Vec<String>>,
    #[serde(default, rename = "field")]
    pub fields: Vec<FieldConfig>,
}

fn one() -> f64 {
    1.0
}

fn yes() -> bool {
    true
}
