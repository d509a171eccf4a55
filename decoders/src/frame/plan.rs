//! A frame definition compiled for decoding: dense per-message field plans, a sorted id table,
//! and the parameter list the daemon publishes.
//!
//! [`FramePlan::decode`] does no string work and no allocation: it checks the envelope, finds
//! the message by id, resolves array selectors into record offsets on the stack, and pushes
//! one row of scaled `f64` values in definition order.

use super::definition::{FrameDefinition, MessageDef};
use super::framing::Framing;
use super::value::FieldLayout;
use crate::channel_map::{Format, Parameter};
use crate::error::DecodeError;
use crate::sample::RowBatch;

/// Most array selectors one message may use (selector offsets live on the stack).
pub const MAX_SELECTORS: usize = 7;

/// What decoding one frame did, for the caller's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeOutcome {
    /// A row was added to the batch.
    Decoded {
        /// Index of the message in the definition (also its row format).
        message: u32,
        /// Values in the row.
        samples: usize,
    },
    /// No message of the definition has this id: counted, not an error.
    Unknown {
        /// The message id found.
        id: u64,
    },
}

/// The compiled definition.
#[derive(Debug, Clone)]
pub struct FramePlan {
    name: String,
    application: String,
    framing: Framing,
    parameters: Vec<Parameter>,
    formats: Vec<Format>,
    messages: Vec<MessagePlan>,
    /// `(id, message index)` sorted by id; empty when frames carry no id.
    ids: Vec<(u64, u32)>,
    /// Added to the message index to give the row format, so that a channel map can give
    /// several definitions (and its DBC messages) one format index space.
    format_base: u32,
}

#[derive(Debug, Clone)]
struct MessagePlan {
    min_len: usize,
    selectors: Vec<SelectorPlan>,
    fields: Vec<FieldPlan>,
}

#[derive(Debug, Clone, Copy)]
struct SelectorPlan {
    field: FieldLayout,
    count: u32,
    stride: usize,
}

#[derive(Debug, Clone, Copy)]
struct FieldPlan {
    layout: FieldLayout,
    scale: f64,
    bias: f64,
    /// Index into the record offsets computed from the selectors; 0 is "no selector" (offset 0).
    record: u8,
}

impl FramePlan {
    /// Compiles a validated definition; message `k` produces rows of format `k`.
    ///
    /// Definitions from [`FrameDefinition::parse`] always compile; one built by hand may fail
    /// with line 0 if its selectors are inconsistent.
    pub fn compile(definition: &FrameDefinition) -> Result<Self, super::DefinitionError> {
        let mut plan = Self {
            name: definition.name.clone(),
            application: definition.application.clone(),
            framing: definition.framing.clone(),
            parameters: Vec::new(),
            formats: Vec::new(),
            messages: Vec::new(),
            ids: Vec::new(),
            format_base: 0,
        };
        for (index, message) in definition.messages.iter().enumerate() {
            let bad_selector = message
                .fields
                .iter()
                .any(|f| f.selector.is_some_and(|s| s >= message.selectors.len()));
            if message.selectors.len() > MAX_SELECTORS || bad_selector {
                return Err(super::DefinitionError {
                    file: definition.name.clone(),
                    line: 0,
                    message: format!(
                        "message `{}` has more than {MAX_SELECTORS} selectors or a field naming a missing one",
                        message.name
                    ),
                });
            }
            plan.add_message(message);
            if let Some(id) = message.id {
                plan.ids.push((id, index as u32));
            }
        }
        plan.ids.sort_unstable();
        Ok(plan)
    }

    /// Parses, validates and compiles the definition `text` (named `file` in errors).
    pub fn load(file: &str, text: &str) -> Result<Self, super::DefinitionError> {
        Self::compile(&FrameDefinition::parse(file, text)?)
    }

    /// The same plan writing rows of format `base + message index` instead of `message index`.
    pub fn with_format_base(mut self, base: u32) -> Self {
        self.format_base = base;
        self
    }

    /// The definition's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The application name (`App` of every identifier).
    pub fn application(&self) -> &str {
        &self.application
    }

    /// The envelope, for framers.
    pub fn framing(&self) -> &Framing {
        &self.framing
    }

    /// All published parameters, grouped by message in definition order.
    pub fn parameters(&self) -> &[Parameter] {
        &self.parameters
    }

    /// Format `index` (as found in [`crate::RowHeader::format`]).
    pub fn format(&self, index: u32) -> Option<&Format> {
        self.formats.get(index as usize)
    }

    /// Number of formats (one per message).
    pub fn format_count(&self) -> usize {
        self.formats.len()
    }

    /// Decodes one whole frame received at `time_ns` into a row of `out` (of format
    /// `message + format base`).
    ///
    /// Checks sync, length and check value first; a frame that fails leaves `out` untouched.
    pub fn decode(
        &self,
        time_ns: u64,
        frame: &[u8],
        out: &mut RowBatch,
    ) -> Result<NativeOutcome, DecodeError> {
        self.check_envelope(frame)?;
        let index = match &self.framing.message_id {
            None => 0,
            Some(layout) => {
                let id = layout.raw(frame, 0).ok_or(truncated(
                    layout.offset,
                    layout.end(),
                    frame.len(),
                ))?;
                match self.ids.binary_search_by_key(&id, |(id, _)| *id) {
                    Ok(slot) => self.ids[slot].1 as usize,
                    Err(_) => return Ok(NativeOutcome::Unknown { id }),
                }
            }
        };
        let Some(message) = self.messages.get(index) else {
            return Ok(NativeOutcome::Unknown { id: 0 });
        };
        if frame.len() < message.min_len {
            return Err(truncated(0, message.min_len, frame.len()));
        }
        let mut records = [0usize; MAX_SELECTORS + 1];
        for (slot, selector) in records[1..].iter_mut().zip(&message.selectors) {
            let offset = selector.field.offset;
            let index = selector.field.raw(frame, 0).ok_or(truncated(
                offset,
                selector.field.end(),
                frame.len(),
            ))?;
            if index >= u64::from(selector.count) {
                return Err(DecodeError::BadIndex {
                    offset,
                    index,
                    count: selector.count,
                });
            }
            *slot = index as usize * selector.stride;
        }
        out.begin_row(time_ns, self.format_base + index as u32);
        for field in &message.fields {
            let base = records[usize::from(field.record)];
            // `min_len` covers every field at every record, so `None` cannot happen here.
            let value = field.layout.value(frame, base).unwrap_or(f64::NAN);
            out.push_value(value * field.scale + field.bias);
        }
        Ok(NativeOutcome::Decoded {
            message: index as u32,
            samples: message.fields.len(),
        })
    }

    fn check_envelope(&self, frame: &[u8]) -> Result<(), DecodeError> {
        if self.framing.is_delimited() {
            match self.framing.frame_len(frame)? {
                None => return Err(truncated(0, self.framing.sync.len() + 1, frame.len())),
                Some(len) if len > frame.len() => return Err(truncated(0, len, frame.len())),
                Some(len) if len < frame.len() => {
                    return Err(DecodeError::TrailingBytes {
                        offset: len,
                        extra: frame.len() - len,
                    });
                }
                Some(_) => {}
            }
        }
        self.framing.verify(frame)
    }

    fn add_message(&mut self, message: &MessageDef) {
        let first = self.parameters.len() as u32;
        for field in &message.fields {
            self.parameters.push(Parameter {
                identifier: format!("{}:{}", field.name, self.application),
                name: field.name.clone(),
                message: message.name.clone(),
                signal: field.name.clone(),
                unit: field.unit.clone(),
                description: field.description.clone(),
                min: field.min,
                max: field.max,
                decimals: decimals(field.scale),
                frequency_hz: None,
                value_descriptions: Vec::new(),
            });
        }
        self.formats.push(Format {
            message: message.name.clone(),
            parameters: (first..self.parameters.len() as u32).collect(),
        });
        self.messages.push(MessagePlan {
            min_len: message.min_len,
            selectors: message
                .selectors
                .iter()
                .map(|s| SelectorPlan {
                    field: s.field,
                    count: u32::try_from(s.count).unwrap_or(u32::MAX),
                    stride: s.stride,
                })
                .collect(),
            fields: message
                .fields
                .iter()
                .map(|f| FieldPlan {
                    layout: f.layout,
                    scale: f.scale,
                    bias: f.bias,
                    record: f.selector.map_or(0, |s| s as u8 + 1),
                })
                .collect(),
        });
    }
}

/// Decimal places worth showing for a scale (0.01 → 2; integers and floats → 0…).
fn decimals(scale: f64) -> u8 {
    let mut decimals = 0;
    let mut s = scale.abs();
    while decimals < 9 && (s - s.round()).abs() > 1e-9 {
        s *= 10.0;
        decimals += 1;
    }
    decimals
}

fn truncated(offset: usize, need: usize, have: usize) -> DecodeError {
    DecodeError::Truncated { offset, need, have }
}
