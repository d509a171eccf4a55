//! Loading a frame definition: TOML text → a validated [`FrameDefinition`], every array
//! expanded into named fields at absolute offsets.
//!
//! Validation happens here, once, and names the file, the 1-based line and the problem:
//! unknown keys, types or endiannesses (from toml), overlapping fields, fields past the frame
//! end or their record's stride, bad bit fields, duplicate names, unknown `select` fields.
//! No IO: the caller passes the text and the file name used in messages.

use std::collections::HashMap;

use toml::Spanned;

use super::expand::{
    Region, Slot, check_bounds, check_names, check_overlaps, expand_array, expand_field,
};
use super::framing::{Check, Framing, LengthField};
use super::schema::{CheckConfig, FileConfig, FrameConfig, IntConfig, LengthConfig, MessageConfig};
use super::value::{Endian, FieldLayout};

/// Frames longer than this are rejected unless `max_length` says otherwise.
pub const DEFAULT_MAX_LENGTH: usize = 4096;

/// Largest frame (and offset) a definition may describe: 1 MiB, so that a typo cannot make a
/// framer allocate without bound.
pub const MAX_FRAME_LENGTH: usize = 1 << 20;

/// Most values one message may expand to (elements × records), bounding load time and rows.
pub const MAX_FIELDS: usize = 65_536;

/// A validated frame definition.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameDefinition {
    /// The definition's name (`[frame] name`).
    pub name: String,
    /// Application name: the `App` part of every parameter identifier.
    pub application: String,
    /// Free text from the file.
    pub description: String,
    /// The envelope shared by every message.
    pub framing: Framing,
    /// The message layouts, in file order.
    pub messages: Vec<MessageDef>,
}

/// One message layout: the fields published when the message id matches.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageDef {
    /// Message name; the parameters' subgroup.
    pub name: String,
    /// Value of the message-id field that selects this layout (`None` without one).
    pub id: Option<u64>,
    /// Free text from the file.
    pub description: String,
    /// Published fields in definition order: message fields first, then array fields.
    pub fields: Vec<FieldDef>,
    /// Fields choosing one record of an array; [`FieldDef::selector`] indexes this.
    pub selectors: Vec<Selector>,
    /// The shortest frame holding every field (with every selectable record).
    pub min_len: usize,
}

/// One published value.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    /// Parameter name (array elements already expanded: `brake_temp_RL`).
    pub name: String,
    /// Where it sits; relative to the selected record when `selector` is set.
    pub layout: FieldLayout,
    /// Physical = raw × scale + bias.
    pub scale: f64,
    /// Physical = raw × scale + bias.
    pub bias: f64,
    /// Physical unit.
    pub unit: String,
    /// Display minimum (always below `max`).
    pub min: f64,
    /// Display maximum.
    pub max: f64,
    /// Free text from the file.
    pub description: String,
    /// Index into [`MessageDef::selectors`]: the record offset added at decode time.
    pub selector: Option<usize>,
}

/// A field whose value picks one record of an array (the player's car).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selector {
    /// The index field (an integer).
    pub field: FieldLayout,
    /// Records in the array; larger indices are decode errors.
    pub count: usize,
    /// Bytes from one record to the next.
    pub stride: usize,
}

/// A definition that cannot be loaded: file, 1-based line and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct DefinitionError {
    /// File name as given by the caller.
    pub file: String,
    /// 1-based line of the offending key or table.
    pub line: u32,
    /// What is wrong, in lower case.
    pub message: String,
}

impl FrameDefinition {
    /// Parses and validates the definition `text`, read from `file` by the caller.
    pub fn parse(file: &str, text: &str) -> Result<Self, DefinitionError> {
        let ctx = Ctx { file, text };
        let config: FileConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |span| span.start);
            ctx.error(at, e.message().trim().to_owned())
        })?;
        let frame_at = config.frame.span().start;
        let frame = config.frame.get_ref();
        let framing = build_framing(&ctx, frame)?;
        if framing.message_id.is_none() && config.messages.len() != 1 {
            return Err(ctx.error(
                frame_at,
                "without [frame.message_id] exactly one [[message]] is needed".into(),
            ));
        }
        let reserved = framing_regions(frame, &framing);
        let mut messages = Vec::with_capacity(config.messages.len());
        let mut seen: HashMap<String, u32> = HashMap::new();
        for message in &config.messages {
            let def = build_message(&ctx, frame, &framing, &reserved, message)?;
            let at = message.name.span().start;
            if let Some(id) = def.id
                && messages.iter().any(|m: &MessageDef| m.id == Some(id))
            {
                return Err(ctx.error(at, format!("duplicate message id {id}")));
            }
            for field in &def.fields {
                if let Some(first) = seen.insert(field.name.clone(), ctx.line(at)) {
                    return Err(ctx.error(
                        at,
                        format!(
                            "duplicate name `{}` (also in the message at line {first})",
                            field.name
                        ),
                    ));
                }
            }
            messages.push(def);
        }
        Ok(Self {
            name: frame.name.clone(),
            application: application(&ctx, &frame.application)?,
            description: frame.description.clone(),
            framing,
            messages,
        })
    }
}

/// The file being loaded, for error positions.
pub(super) struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    pub(super) fn line(&self, at: usize) -> u32 {
        let before = self.text.get(..at).unwrap_or(self.text);
        before.bytes().filter(|&b| b == b'\n').count() as u32 + 1
    }

    pub(super) fn error(&self, at: usize, message: String) -> DefinitionError {
        DefinitionError {
            file: self.file.to_owned(),
            line: self.line(at),
            message,
        }
    }
}

fn application(ctx: &Ctx, app: &Spanned<String>) -> Result<String, DefinitionError> {
    let name = app.get_ref().trim();
    if name.is_empty() || name.contains(':') {
        return Err(ctx.error(
            app.span().start,
            format!("application name {name:?} must be non-empty and contain no ':'"),
        ));
    }
    Ok(name.to_owned())
}

fn build_framing(ctx: &Ctx, frame: &FrameConfig) -> Result<Framing, DefinitionError> {
    let fixed_length = frame.fixed_length.as_ref().map(|f| *f.get_ref());
    if let (Some(fixed), Some(_)) = (&frame.fixed_length, &frame.length) {
        let message = "give either fixed_length or [frame.length], not both".into();
        return Err(ctx.error(fixed.span().start, message));
    }
    let max_length = frame
        .max_length
        .or(fixed_length)
        .unwrap_or(DEFAULT_MAX_LENGTH);
    let at = frame.fixed_length.as_ref().map_or(0, |f| f.span().start);
    if !(1..=MAX_FRAME_LENGTH).contains(&max_length) {
        let message =
            format!("frame lengths must be 1 to {MAX_FRAME_LENGTH} bytes, not {max_length}");
        return Err(ctx.error(at, message));
    }
    let int = |config: &Spanned<IntConfig>| int_field(ctx, frame.endian, config);
    Ok(Framing {
        sync: frame
            .sync
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_default(),
        fixed_length,
        max_length,
        length: frame
            .length
            .as_ref()
            .map(|l| length_field(ctx, frame.endian, l))
            .transpose()?,
        counter: frame.counter.as_ref().map(int).transpose()?,
        message_id: frame.message_id.as_ref().map(int).transpose()?,
        check: frame
            .check
            .as_ref()
            .map(|c| check(ctx, frame.endian, c))
            .transpose()?,
    })
}

/// A counter, length or id: an unsigned integer inside the frame-length bound.
fn int_field(
    ctx: &Ctx,
    endian: Endian,
    config: &Spanned<IntConfig>,
) -> Result<FieldLayout, DefinitionError> {
    let c = config.get_ref();
    let at = config.span().start;
    if c.ty.is_float() || c.ty.is_signed() {
        let message = format!(
            "{:?} cannot be a counter, length or id: use an unsigned type",
            c.ty
        );
        return Err(ctx.error(at, message.to_lowercase()));
    }
    if c.offset > MAX_FRAME_LENGTH {
        return Err(ctx.error(
            at,
            format!(
                "offset {} is past the largest frame ({MAX_FRAME_LENGTH} bytes)",
                c.offset
            ),
        ));
    }
    Ok(FieldLayout::new(c.offset, c.ty, c.endian.unwrap_or(endian)))
}

fn length_field(
    ctx: &Ctx,
    endian: Endian,
    spanned: &Spanned<LengthConfig>,
) -> Result<LengthField, DefinitionError> {
    let c = spanned.get_ref();
    let int = IntConfig {
        offset: c.offset,
        ty: c.ty,
        endian: c.endian,
    };
    let layout = int_field(ctx, endian, &Spanned::new(spanned.span(), int))?;
    if c.header.max(c.trailer) > MAX_FRAME_LENGTH {
        return Err(ctx.error(
            spanned.span().start,
            format!("header and trailer must be at most {MAX_FRAME_LENGTH} bytes"),
        ));
    }
    Ok(LengthField {
        layout,
        counts: c.counts,
        header: c.header,
        trailer: c.trailer,
    })
}

fn check(
    ctx: &Ctx,
    endian: Endian,
    spanned: &Spanned<CheckConfig>,
) -> Result<Check, DefinitionError> {
    let c = spanned.get_ref();
    let bound = MAX_FRAME_LENGTH as i64;
    if [c.start, c.end, c.at]
        .iter()
        .any(|p| !(-bound..=bound).contains(p))
    {
        return Err(ctx.error(
            spanned.span().start,
            format!("check positions must lie within ±{bound}"),
        ));
    }
    let endian = c.endian.unwrap_or(endian);
    Ok(Check {
        kind: c.algorithm,
        start: c.start,
        end: c.end,
        at: c.at,
        endian,
    })
}

/// The envelope's own bytes, which no message field may overlap.
fn framing_regions(frame: &FrameConfig, framing: &Framing) -> Vec<Region> {
    let mut regions = Vec::new();
    let mut add = |start: usize, end: usize, label: &str, at: usize| {
        regions.push(Region {
            start,
            end,
            bits: None,
            label: label.to_owned(),
            at,
        });
    };
    if let Some(sync) = frame.sync.as_ref().filter(|s| !s.get_ref().is_empty()) {
        add(0, sync.get_ref().len(), "the sync bytes", sync.span().start);
    }
    let parts = [
        (
            framing.length.map(|l| l.layout),
            frame.length.as_ref().map(|s| s.span().start),
            "the length field",
        ),
        (
            framing.counter,
            frame.counter.as_ref().map(|s| s.span().start),
            "the counter",
        ),
        (
            framing.message_id,
            frame.message_id.as_ref().map(|s| s.span().start),
            "the message id",
        ),
    ];
    for (layout, at, label) in parts {
        if let (Some(layout), Some(at)) = (layout, at) {
            add(layout.offset, layout.end(), label, at);
        }
    }
    if let (Some(check), Some(spanned), Some(len)) =
        (&framing.check, &frame.check, framing.fixed_length)
        && let Some(at) = super::framing::resolve(check.at, len)
    {
        let end = at + check.kind.width();
        add(at, end, "the check value", spanned.span().start);
    }
    regions
}

/// The message's `id`, present exactly when the frame has a message-id field.
fn message_id(
    ctx: &Ctx,
    framing: &Framing,
    message: &MessageConfig,
) -> Result<Option<u64>, DefinitionError> {
    let id = message.id.as_ref().map(|id| *id.get_ref());
    let problem = match (&framing.message_id, id) {
        (Some(_), None) => "a message needs an `id` when [frame.message_id] is set",
        (None, Some(_)) => "`id` given but [frame] has no message_id field",
        _ => return Ok(id),
    };
    Err(ctx.error(message.name.span().start, problem.into()))
}

/// Every byte region of the message (framing, then each field at every selectable record)
/// and the shortest frame holding them all.
fn regions(reserved: &[Region], slots: &[Slot], selectors: &[Selector]) -> (Vec<Region>, usize) {
    let mut regions: Vec<Region> = reserved
        .iter()
        .map(|r| Region {
            label: r.label.clone(),
            ..*r
        })
        .collect();
    let mut min_len = 0;
    // Selector indices come from `expand_array`, which pushes the selector before its fields.
    for slot in slots {
        let records = slot.def.selector.map_or(1, |s| selectors[s].count);
        let stride = slot.def.selector.map_or(0, |s| selectors[s].stride);
        for record in 0..records {
            let region = slot.region(record * stride);
            min_len = min_len.max(region.end);
            regions.push(region);
        }
    }
    (regions, min_len)
}

fn build_message(
    ctx: &Ctx,
    frame: &FrameConfig,
    framing: &Framing,
    reserved: &[Region],
    message: &MessageConfig,
) -> Result<MessageDef, DefinitionError> {
    let at = message.name.span().start;
    let id = message_id(ctx, framing, message)?;
    let mut slots = Vec::new();
    let mut selectors = Vec::new();
    for field in &message.fields {
        slots.extend(expand_field(ctx, field, frame.endian, 0, None, None)?);
    }
    for array in &message.arrays {
        expand_array(
            ctx,
            frame.endian,
            message,
            array,
            &mut slots,
            &mut selectors,
        )?;
    }
    let values: usize = slots
        .iter()
        .map(|slot| slot.def.selector.map_or(1, |s| selectors[s].count))
        .sum();
    if values > MAX_FIELDS {
        let message =
            format!("message expands to {values} values; at most {MAX_FIELDS} are supported");
        return Err(ctx.error(at, message));
    }
    let (mut regions, min_len) = regions(reserved, &slots, &selectors);
    check_names(ctx, &slots)?;
    check_bounds(ctx, framing.fixed_length.or(message.length), &regions)?;
    check_overlaps(ctx, &mut regions)?;
    Ok(MessageDef {
        name: message.name.get_ref().clone(),
        id,
        description: message.description.clone(),
        fields: slots
            .into_iter()
            .filter(|s| s.publish)
            .map(|s| s.def)
            .collect(),
        selectors,
        min_len,
    })
}
