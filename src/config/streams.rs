//! Which data stream each message's samples go to (`[[stream]]`, `docs/sessions.md`): the
//! first rule whose message patterns match the message, or whose sources carry it, else
//! `[car] stream`.

use std::collections::BTreeSet;

use decoders::channel_map::{ChannelMap, glob};

use super::{Config, StreamRule};

/// The data streams of a car and the rules that choose among them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamRouter {
    /// Stream names; index 0 is `[car] stream`, then each `[[stream]]` in order.
    names: Vec<String>,
    rules: Vec<RouteRule>,
}

#[derive(Debug, Clone, PartialEq)]
struct RouteRule {
    stream: u16,
    messages: Vec<String>,
    /// Frame definitions and INI messages of the sources named: their messages go here.
    native: Vec<String>,
    /// A CAN source was named: the DBC messages go here.
    can: bool,
}

impl StreamRouter {
    /// The routes of `config`.
    pub fn new(config: &Config) -> Self {
        let rules = (1..)
            .zip(&config.streams)
            .map(|(stream, rule)| route_rule(config, rule, stream))
            .collect();
        Self {
            names: config.data_streams(),
            rules,
        }
    }

    /// Every data stream's name, `[car] stream` first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The index (into [`StreamRouter::names`]) of the stream for `message` of `map`.
    pub fn stream_of(&self, map: &ChannelMap, message: &str) -> u16 {
        if self.rules.is_empty() {
            return 0;
        }
        let native = native_messages(map);
        for rule in &self.rules {
            let named = rule.messages.iter().any(|pattern| glob(pattern, message));
            let by_source = if native.contains(message) {
                rule.native.iter().any(|owner| {
                    owner == message || definition_messages(map, owner).contains(message)
                })
            } else {
                rule.can
            };
            if named || by_source {
                return rule.stream;
            }
        }
        0
    }
}

impl Config {
    /// Every data stream's name: `[car] stream`, then each `[[stream]]` in order.
    pub fn data_streams(&self) -> Vec<String> {
        std::iter::once(self.car.stream.clone())
            .chain(self.streams.iter().map(|rule| rule.name.clone()))
            .collect()
    }
}

fn route_rule(config: &Config, rule: &StreamRule, stream: usize) -> RouteRule {
    let mut native = Vec::new();
    let mut can = false;
    for name in &rule.sources {
        let Some(source) = config.sources.iter().find(|s| s.name == *name) else {
            continue;
        };
        if let Some(message) = config.polled_message(source) {
            native.push(message);
        } else if let Some(definition) = &source.definition {
            native.push(definition.clone());
        } else {
            can = true;
        }
    }
    RouteRule {
        stream: u16::try_from(stream).unwrap_or(u16::MAX),
        messages: rule.messages.clone(),
        native,
        can,
    }
}

/// Messages of frame definitions and INIs: everything else in the map is a DBC message.
fn native_messages(map: &ChannelMap) -> BTreeSet<String> {
    let mut messages: BTreeSet<String> = map.definitions().iter().flat_map(plan_messages).collect();
    messages.extend(
        map.messages()
            .filter(|message| map.ini_index(message).is_some())
            .map(str::to_owned),
    );
    messages
}

/// The messages of the definition named `name`, if the map has it.
fn definition_messages(map: &ChannelMap, name: &str) -> BTreeSet<String> {
    map.definition_index(name)
        .map(|index| plan_messages(&map.definitions()[index]).collect())
        .unwrap_or_default()
}

fn plan_messages(plan: &decoders::frame::FramePlan) -> impl Iterator<Item = String> + '_ {
    (0..plan.format_count() as u32)
        .filter_map(|index| plan.format(index).map(|f| f.message.clone()))
}
