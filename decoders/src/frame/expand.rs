//! Expanding a message's fields for validation and decoding: element lists (`count`,
//! `names`) and arrays of records (all published, or one chosen by a `select` field) become
//! named fields at absolute offsets; then the byte regions they occupy are checked for
//! overlaps, for reaching past the frame end, and the names for duplicates.
//!
//! Errors carry the line of the field's `name` key (or of the key at fault).

use std::collections::HashMap;

use toml::Spanned;

use super::definition::{Ctx, DefinitionError, FieldDef, MAX_FIELDS, MAX_FRAME_LENGTH, Selector};
use super::schema::{ArrayConfig, FieldConfig, MessageConfig};
use super::value::{Endian, FieldLayout, ValueType};

/// Bytes one field (or framing part) occupies, for overlap and bounds checks.
pub(super) struct Region {
    pub(super) start: usize,
    pub(super) end: usize,
    /// Bit-field mask within an integer container starting at `start`.
    pub(super) bits: Option<u64>,
    pub(super) label: String,
    pub(super) at: usize,
}

/// A field before the published/unpublished split.
pub(super) struct Slot {
    pub(super) def: FieldDef,
    pub(super) publish: bool,
    at: usize,
}

impl Slot {
    pub(super) fn region(&self, shift: usize) -> Region {
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

pub(super) fn expand_array(
    ctx: &Ctx,
    endian: Endian,
    message: &MessageConfig,
    array: &ArrayConfig,
    slots: &mut Vec<Slot>,
    selectors: &mut Vec<Selector>,
) -> Result<(), DefinitionError> {
    let (count, stride) = check_array(ctx, array)?;
    if let Some(select) = &array.select {
        if selectors.len() >= super::plan::MAX_SELECTORS {
            let limit = super::plan::MAX_SELECTORS;
            return Err(ctx.error(
                select.span().start,
                format!("a message may select records of at most {limit} arrays"),
            ));
        }
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

/// The array's `(count, stride)` once they, and its fields, are known to fit.
fn check_array(ctx: &Ctx, array: &ArrayConfig) -> Result<(usize, usize), DefinitionError> {
    let (count, stride) = (*array.count.get_ref(), *array.stride.get_ref());
    let name = array.name.get_ref();
    let at = array.count.span().start;
    let too_far = array.offset.max(stride) > MAX_FRAME_LENGTH;
    if too_far || count > MAX_FIELDS || count.saturating_mul(stride) > MAX_FRAME_LENGTH {
        let message =
            format!("array `{name}` reaches past the largest frame ({MAX_FRAME_LENGTH} bytes)");
        return Err(ctx.error(at, message));
    }
    if count == 0 || stride == 0 {
        return Err(ctx.error(
            at,
            format!("array `{name}` needs count and stride of at least 1"),
        ));
    }
    let elements: usize = array
        .fields
        .iter()
        .map(|f| f.count.as_ref().map_or(1, |c| *c.get_ref()))
        .sum();
    if count.saturating_mul(elements) > MAX_FIELDS {
        return Err(ctx.error(
            at,
            format!("array `{name}` expands to more than {MAX_FIELDS} values"),
        ));
    }
    for field in &array.fields {
        check_field_bounds(ctx, field)?;
        let elements = field.count.as_ref().map_or(1, |c| *c.get_ref());
        let last = field.offset.get_ref()
            + field.stride.unwrap_or(field.ty.size()) * elements.saturating_sub(1)
            + field.ty.size();
        if last > stride {
            let message = format!(
                "field `{}` ends at byte {last} of its record, past the stride {stride}",
                field.name.get_ref()
            );
            return Err(ctx.error(field.offset.span().start, message));
        }
    }
    Ok((count, stride))
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

pub(super) fn expand_field(
    ctx: &Ctx,
    field: &FieldConfig,
    endian: Endian,
    base: usize,
    prefix: Option<&str>,
    selector: Option<usize>,
) -> Result<Vec<Slot>, DefinitionError> {
    let at = field.name.span().start;
    let name = field.name.get_ref().trim();
    check_field(ctx, field, name, at)?;
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

pub(super) fn check_names(ctx: &Ctx, slots: &[Slot]) -> Result<(), DefinitionError> {
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

pub(super) fn check_bounds(
    ctx: &Ctx,
    len: Option<usize>,
    regions: &[Region],
) -> Result<(), DefinitionError> {
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

pub(super) fn check_overlaps(ctx: &Ctx, regions: &mut [Region]) -> Result<(), DefinitionError> {
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

/// Name, scale and sizes of one field.
fn check_field(
    ctx: &Ctx,
    field: &FieldConfig,
    name: &str,
    at: usize,
) -> Result<(), DefinitionError> {
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
    if field.count.is_none() && field.names.is_some() {
        return Err(ctx.error(at, format!("field `{name}` has names but no count")));
    }
    check_field_bounds(ctx, field)
}

/// Offsets, strides and counts small enough that no arithmetic on them can overflow.
fn check_field_bounds(ctx: &Ctx, field: &FieldConfig) -> Result<(), DefinitionError> {
    let count = field.count.as_ref().map_or(1, |c| *c.get_ref());
    let stride = field.stride.unwrap_or(0);
    let span = count.saturating_mul(stride.max(field.ty.size()));
    if *field.offset.get_ref() > MAX_FRAME_LENGTH || count > MAX_FIELDS || span > MAX_FRAME_LENGTH {
        let message = format!(
            "field `{}` reaches past the largest frame ({MAX_FRAME_LENGTH} bytes)",
            field.name.get_ref()
        );
        return Err(ctx.error(field.offset.span().start, message));
    }
    Ok(())
}
