//! Ordering of computed output channels: each is placed after every channel it reads (depth
//! first), so one pass in order evaluates them all; one that reads an unknown, skipped or
//! cyclic name is dropped with a warning instead.

use std::collections::HashMap;

use super::IniWarning;
use super::channels::{Channel, ChannelKind};
use super::expr::{Expr, Program};

/// A computed channel as parsed, before its names are resolved.
#[derive(Debug, Clone)]
pub(super) struct Computed {
    pub name: String,
    pub unit: String,
    pub expr: Expr,
    pub line: u32,
}

/// Appends the computed channels that can be resolved to `channels` (the data channels), in
/// dependency order, with their programs compiled against the final slots.
pub(super) fn append_computed(
    channels: &mut Vec<Channel>,
    computed: Vec<Computed>,
    warnings: &mut Vec<IniWarning>,
) {
    let mut resolver = Resolver {
        computed: &computed,
        by_name: computed
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i))
            .collect(),
        visit: vec![Visit::New; computed.len()],
        slots: channels
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i as u32))
            .collect(),
        programs: vec![None; computed.len()],
        order: Vec::new(),
        data_channels: channels.len(),
        warnings,
    };
    for index in 0..computed.len() {
        resolver.place(index);
    }
    let (order, mut programs) = (resolver.order, resolver.programs);
    for index in order {
        let Computed {
            name, unit, line, ..
        } = &computed[index];
        if let Some(program) = programs[index].take() {
            channels.push(Channel {
                name: name.clone(),
                unit: unit.clone(),
                kind: ChannelKind::Computed { program },
                line: *line,
                range: None,
            });
        }
    }
}

/// Depth-first visit state of one computed channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    /// On the current path: meeting it again means a cycle.
    Open,
    /// Placed or skipped.
    Done,
}

struct Resolver<'a> {
    computed: &'a [Computed],
    by_name: HashMap<&'a str, usize>,
    visit: Vec<Visit>,
    /// Slot of every channel placed so far, by name.
    slots: HashMap<String, u32>,
    programs: Vec<Option<Program>>,
    /// Computed channels in placement order.
    order: Vec<usize>,
    data_channels: usize,
    warnings: &'a mut Vec<IniWarning>,
}

impl Resolver<'_> {
    /// Places channel `index` after what it reads; false if it had to be skipped.
    fn place(&mut self, index: usize) -> bool {
        let Computed {
            name, expr, line, ..
        } = &self.computed[index];
        match self.visit[index] {
            Visit::Done => return self.programs[index].is_some(),
            Visit::Open => {
                self.warn(
                    *line,
                    format!("computed channel {name} is part of a reference cycle; skipped"),
                );
                return false;
            }
            Visit::New => {}
        }
        self.visit[index] = Visit::Open;
        let mut ok = true;
        for reference in expr.names() {
            if self.slots.contains_key(reference) {
                continue;
            }
            let note = match self.by_name.get(reference).copied() {
                Some(other) if self.place(other) => continue,
                Some(_) => {
                    format!("computed channel {name} reads skipped channel {reference}; skipped")
                }
                None => format!(
                    "computed channel {name} reads unknown name {reference} (a tune constant?); skipped"
                ),
            };
            self.warn(*line, note);
            ok = false;
            break;
        }
        self.visit[index] = Visit::Done;
        if !ok {
            return false;
        }
        let slots = &self.slots;
        match expr.compile(&mut |n| slots.get(n).copied()) {
            Ok(program) => {
                let slot = (self.data_channels + self.order.len()) as u32;
                self.slots.insert(name.clone(), slot);
                self.programs[index] = Some(program);
                self.order.push(index);
                true
            }
            Err(_) => {
                self.warn(
                    *line,
                    format!("computed channel {name} nests too deeply; skipped"),
                );
                false
            }
        }
    }

    fn warn(&mut self, line: u32, message: String) {
        self.warnings.push(IniWarning::new(line, message));
    }
}
