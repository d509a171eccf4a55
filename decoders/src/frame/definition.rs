//! Loading a frame definition: TOML text → a validated [`FrameDefinition`], every array
//! expanded into named fields at absolute offsets.
//!
//! Validation happens here, once, and names the file, the 1-based line and the problem:
//! unknown keys, types or endiannesses (from toml), overlapping fields, fields past the frame
//! end or their record's stride, bad bit fields, duplicate names, unknown `select` fields.
//! No IO: the caller passes the text and the file name used in messages.

use std::collections::HashMap;

use toml::Spanned;

use super::framing::{Check, Framing, LengthField};
use super::schema::{ArrayConfig, FieldConfig, FileConfig, FrameConfig, IntConfig, MessageConfig};
use super::value::{Endian, FieldLayout, ValueType};

/// Frames longer than this are rejected unless `max_length` says otherwise.
pub const DEFAULT_MAX_LENGTH: usize = 4096;

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
        let reserved = framing_regions(&ctx, frame, &framing);
        let mut messages = Vec::with_capacity(config.messages.len());
        let mut seen: HashMap<String, u32> = HashMap::new();
        for message in &config.messages {
            let def = build_message(&ctx, frame, &framing, &reserved, message)?;
            let at = message.name.span().start;
            if let Some(id) = def.id {
                if messages.iter().any(|m: &MessageDef| m.id == Some(id)) {
                    return Err(ctx.error(at, format!("duplicate message id {id}")));
                }
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
struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, at: usize) -> u32 {
        let before = self.text.get(..at).unwrap_or(self.text);
        before.bytes().filter(|&b| b == b'\n').count() as u32 + 1
    }

    fn error(&self, at: usize, message: String) -> DefinitionError {
        DefinitionError {
            file: self.file.to_owned(),
            line: self.line(at),
            message,
        }
    }
}

/// Bytes one field (or framing part) occupies, for overlap and bounds checks.
struct Region {
    start: usize,
    end: usize,
    /// Bit-field mask within an integer container starting at `start`.
    bits: Option<u64>,
    label: String,
    at: usize,
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
    let int = |config: &Spanned<IntConfig>| -> Result<FieldLayout, DefinitionError> {
        let c = config.get_ref();
        if c.ty.is_float() || c.ty.is_signed() {
            return Err(ctx.error(
                config.span().start,
                format!(
                    "{:?} cannot be a counter, length or id: use an unsigned type",
                    c.ty
                )
                .to_lowercase(),
            ));
        }
        Ok(FieldLayout::new(
            c.offset,
            c.ty,
            c.endian.unwrap_or(frame.endian),
        ))
    };
    let length = match &frame.length {
        Some(spanned) => {
            let c = spanned.get_ref();
            let layout = int(&Spanned::new(
                spanned.span(),
                IntConfig {
                    offset: c.offset,
                    ty: c.ty,
                    endian: c.endian,
                },
            ))?;
            Some(LengthField {
                layout,
                counts: c.counts,
                header: c.header,
                trailer: c.trailer,
            })
        }
        None => None,
    };
    let check = frame.check.as_ref().map(|spanned| {
        let c = spanned.get_ref();
        Check {
            kind: c.algorithm,
            start: c.start,
            end: c.end,
            at: c.at,
            endian: c.endian.unwrap_or(frame.endian),
        }
    });
    let fixed_length = frame.fixed_length.as_ref().map(|f| *f.get_ref());
    if let (Some(fixed), Some(_)) = (&frame.fixed_length, &length) {
        return Err(ctx.error(
            fixed.span().start,
            "give either fixed_length or [frame.length], not both".into(),
        ));
    }
    Ok(Framing {
        sync: frame
            .sync
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_default(),
        fixed_length,
        max_length: frame
            .max_length
            .or(fixed_length)
            .unwrap_or(DEFAULT_MAX_LENGTH),
        length,
        counter: frame.counter.as_ref().map(int).transpose()?,
        message_id: frame.message_id.as_ref().map(int).transpose()?,
        check,
    })
}

/// The envelope's own bytes, which no message field may overlap.
fn framing_regions(ctx: &Ctx, frame: &FrameConfig, framing: &Framing) -> Vec<Region> {
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
    {
        if let Some(at) = super::framing::resolve(check.at, len) {
            add(
                at,
                at + check.kind.width(),
                "the check value",
                spanned.span().start,
            );
        }
    }
    let _ = ctx;
    regions
}

fn build_message(
    ctx: &Ctx,
    frame: &FrameConfig,
    framing: &Framing,
    reserved: &[Region],
    message: &MessageConfig,
) -> Result<MessageDef, DefinitionError> {
    let at = message.name.span().start;
    let id = message.id.as_ref().map(|id| *id.get_ref());
    match (&framing.message_id, id) {
        (Some(_), None) => {
            return Err(ctx.error(
                at,
                "a message needs an `id` when [frame.message_id] is set".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(ctx.error(at, "`id` given but [frame] has no message_id field".into()));
        }
        _ => {}
    }
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
    let mut regions: Vec<Region> = reserved
        .iter()
        .map(|r| Region {
            label: r.label.clone(),
            ..*r
        })
        .collect();
    let mut min_len = 0;
    for slot in &slots {
        let records = slot.def.selector.map_or(1, |s: usize| selectors[s].count);
        let stride = slot.def.selector.map_or(0, |s| selectors[s].stride);
        for record in 0..records {
            let region = slot.region(record * stride);
            min_len = min_len.max(region.end);
            regions.push(region);
        }
    }
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

/// A field before the published/unpublished split.
struct Slot {
    def: FieldDef,
    publish: bool,
    at: usize,
}

impl Slot {
    fn region(&self, shift: usize) -> Region {
        let layout = &self.def.layout;
        let bits = layout.bits.map(|(lo, width)| {
            let mask = if width >= 64 {
                u64::MAX
            } else {
                (1u64 << width) - 1
            };
            mask << lo
        });
        Region {
            start: layout.offset + shift,
            end: layout.end() + shift,
            bits,
            label: format!("field `{}`", self.def.name),
            at: self.at,
        }
    }
}

fn expand_array(
    ctx: &Ctx,
    endian: Endian,
    message: &MessageConfig,
    array: &ArrayConfig,
    slots: &mut Vec<Slot>,
    selectors: &mut Vec<super::definition::Selector>,
) -> Result<(), DefinitionError> {
    let (count, stride) = (*array.count.get_ref(), *array.stride.get_ref());
    if count == 0 || stride == 0 {
        return Err(ctx.error(
            array.count.span().start,
            format!(
                "array `{}` needs count and stride of at least 1",
                array.name.get_ref()
            ),
        ));
    }
    for field in &array.fields {
        let elements = field.count.as_ref().map_or(1, |c| *c.get_ref());
        let last = field.offset.get_ref()
            + field.stride.unwrap_or(field.ty.size()) * elements.saturating_sub(1)
            + field.ty.size();
        if last > stride {
            return Err(ctx.error(
                field.offset.span().start,
                format!(
                    "field `{}` ends at byte {last} of its record, past the stride {stride}",
                    field.name.get_ref()
                ),
            ));
        }
    }
    if let Some(select) = &array.select {
        let selector = selector(ctx, endian, message, select, count, stride)?;
        let index = selectors.len();
        selectors.push(selector);
        for field in &array.fields {
            slots.extend(expand_field(
                ctx,
                field,
                endian,
                array.offset,
                None,
                Some(index),
            )?);
        }
        return Ok(());
    }
    let names = element_names(
        ctx,
        array.name.get_ref(),
        array.names.as_deref(),
        count,
        array.name.span().start,
        "",
    )?;
    for (record, prefix) in names.iter().enumerate() {
        for field in &array.fields {
            slots.extend(expand_field(
                ctx,
                field,
                endian,
                array.offset + record * stride,
                Some(prefix),
                None,
            )?);
        }
    }
    Ok(())
}

fn selector(
    ctx: &Ctx,
    endian: Endian,
    message: &MessageConfig,
    select: &Spanned<String>,
    count: usize,
    stride: usize,
) -> Result<Selector, DefinitionError> {
    let name = select.get_ref();
    let Some(field) = message
        .fields
        .iter()
        .find(|f| f.name.get_ref() == name && f.count.is_none())
    else {
        return Err(ctx.error(
            select.span().start,
            format!("select names no single field `{name}` of this message"),
        ));
    };
    if field.ty.is_float() {
        return Err(ctx.error(
            select.span().start,
            format!("select field `{name}` must be an integer"),
        ));
    }
    let mut layout = FieldLayout::new(
        *field.offset.get_ref(),
        field.ty,
        field.endian.unwrap_or(endian),
    );
    layout.bits = bit_field(ctx, field)?;
    Ok(Selector {
        field: layout,
        count,
        stride,
    })
}

fn expand_field(
    ctx: &Ctx,
    field: &FieldConfig,
    endian: Endian,
    base: usize,
    prefix: Option<&str>,
    selector: Option<usize>,
) -> Result<Vec<Slot>, DefinitionError> {
    let at = field.name.span().start;
    let name = field.name.get_ref().trim();
    if name.is_empty() || name.contains(':') {
        return Err(ctx.error(
            at,
            format!("field name {name:?} must be non-empty and contain no ':'"),
        ));
    }
    if !field.scale.is_finite() || field.scale == 0.0 || !field.bias.is_finite() {
        return Err(ctx.error(
            at,
            format!("field `{name}` needs a finite, non-zero scale and a finite bias"),
        ));
    }
    let mut layout = FieldLayout::new(
        base + field.offset.get_ref(),
        field.ty,
        field.endian.unwrap_or(endian),
    );
    layout.bits = bit_field(ctx, field)?;
    let names = match &field.count {
        None => vec![name.to_owned()],
        Some(count) => element_names(
            ctx,
            name,
            field.names.as_deref(),
            *count.get_ref(),
            count.span().start,
            "_",
        )?,
    };
    let stride = field.stride.unwrap_or(field.ty.size());
    let (min, max) = limits(field, &layout);
    Ok(names
        .into_iter()
        .enumerate()
        .map(|(index, element)| {
            let mut layout = layout;
            layout.offset += index * stride;
            let name = prefix.map_or_else(|| element.clone(), |p| format!("{p}_{element}"));
            Slot {
                def: FieldDef {
                    name,
                    layout,
                    scale: field.scale,
                    bias: field.bias,
                    unit: field.unit.clone(),
                    min,
                    max,
                    description: field.description.clone(),
                    selector,
                },
                publish: field.publish,
                at,
            }
        })
        .collect())
}

/// Names of `count` elements of `base`: `names` (`{name}` substituted, or appended after
/// `joiner`), else `{index}` substituted, else the index appended.
fn element_names(
    ctx: &Ctx,
    base: &str,
    names: Option<&[String]>,
    count: usize,
    at: usize,
    joiner: &str,
) -> Result<Vec<String>, DefinitionError> {
    match names {
        Some(names) if names.len() != count => Err(ctx.error(
            at,
            format!("`{base}` has {} names for {count} elements", names.len()),
        )),
        Some(names) => Ok(names
            .iter()
            .map(|n| {
                if base.contains("{name}") {
                    base.replace("{name}", n)
                } else {
                    format!("{base}{joiner}{n}")
                }
            })
            .collect()),
        None if count == 0 => Err(ctx.error(at, format!("`{base}` needs a count of at least 1"))),
        None => Ok((0..count)
            .map(|i| {
                if base.contains("{index}") {
                    base.replace("{index}", &i.to_string())
                } else {
                    format!("{base}{joiner}{i}")
                }
            })
            .collect()),
    }
}

fn bit_field(ctx: &Ctx, field: &FieldConfig) -> Result<Option<(u8, u8)>, DefinitionError> {
    let (offset, width) = match (&field.bit_offset, &field.bit_width) {
        (None, None) => return Ok(None),
        (offset, Some(width)) => (offset.as_ref().map_or(0, |o| *o.get_ref()), width),
        (Some(offset), None) => {
            return Err(ctx.error(
                offset.span().start,
                format!("bit field `{}` needs bit_width", field.name.get_ref()),
            ));
        }
    };
    let bits = field.ty.bits();
    let w = *width.get_ref();
    if field.ty.is_float() || w == 0 || u32::from(offset) + u32::from(w) > bits {
        return Err(ctx.error(
            width.span().start,
            format!(
                "bit field `{}` (bits {offset}..{}) does not fit in a {:?}",
                field.name.get_ref(),
                u32::from(offset) + u32::from(w),
                field.ty
            )
            .to_lowercase(),
        ));
    }
    Ok(Some((offset, w)))
}

/// Display limits: as written, else the raw range scaled (floats: ±1e9).
fn limits(field: &FieldConfig, layout: &FieldLayout) -> (f64, f64) {
    let width = layout.bits.map_or(layout.ty.bits(), |(_, w)| u32::from(w));
    let (raw_min, raw_max) = match layout.ty {
        ValueType::F32 | ValueType::F64 => (-1e9, 1e9),
        ty if ty.is_signed() => (
            -(2f64.powi(width as i32 - 1)),
            2f64.powi(width as i32 - 1) - 1.0,
        ),
        _ => (0.0, 2f64.powi(width as i32) - 1.0),
    };
    let (a, b) = (
        raw_min * field.scale + field.bias,
        raw_max * field.scale + field.bias,
    );
    let min = field.min.unwrap_or(a.min(b));
    let max = field.max.unwrap_or(a.max(b));
    if max > min {
        (min, max)
    } else {
        (min, min + 1.0)
    }
}

fn check_names(ctx: &Ctx, slots: &[Slot]) -> Result<(), DefinitionError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for slot in slots {
        if let Some(first) = seen.insert(slot.def.name.as_str(), slot.at) {
            return Err(ctx.error(
                slot.at,
                format!(
                    "duplicate name `{}` (first at line {})",
                    slot.def.name,
                    ctx.line(first)
                ),
            ));
        }
    }
    Ok(())
}

fn check_bounds(ctx: &Ctx, len: Option<usize>, regions: &[Region]) -> Result<(), DefinitionError> {
    let Some(len) = len else { return Ok(()) };
    match regions.iter().find(|r| r.end > len) {
        Some(r) => Err(ctx.error(
            r.at,
            format!(
                "{} ends at byte {}, past the frame end ({len} bytes)",
                r.label, r.end
            ),
        )),
        None => Ok(()),
    }
}

fn check_overlaps(ctx: &Ctx, regions: &mut [Region]) -> Result<(), DefinitionError> {
    regions.sort_by_key(|r| (r.start, r.end));
    for (i, a) in regions.iter().enumerate() {
        for b in regions[i + 1..].iter().take_while(|b| b.start < a.end) {
            let shared_container = a.start == b.start && a.end == b.end;
            let disjoint_bits = matches!((a.bits, b.bits), (Some(x), Some(y)) if x & y == 0);
            if !(shared_container && disjoint_bits) {
                let (first, second) = if a.at <= b.at { (a, b) } else { (b, a) };
                return Err(ctx.error(
                    second.at,
                    format!(
                        "{} (bytes {}..{}) overlaps {} (bytes {}..{}, line {})",
                        second.label,
                        second.start,
                        second.end,
                        first.label,
                        first.start,
                        first.end,
                        ctx.line(first.at)
                    ),
                ));
            }
        }
    }
    Ok(())
}
