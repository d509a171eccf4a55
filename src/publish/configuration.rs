//! Builds the Open Streaming `ConfigurationPacket` for a compiled channel map: one
//! ParameterDefinition per parameter and exactly one top-level GroupDefinition (the
//! application) with a subgroup per CAN message (producer rules 16–19, 62–63).

use decoders::channel_map::{ChannelMap, Parameter};
use prost::Message;

use open_streaming::open_data::{
    ConfigurationPacket, DataType, GroupDefinition, ParameterDefinition, TextConversionDefinition,
};

/// The configuration for `map`; `config_id` is left empty for the producer to fill with a
/// unique key.
pub fn configuration_packet(map: &ChannelMap) -> ConfigurationPacket {
    let app = map.application();
    let subgroups = map
        .messages()
        .map(|message| GroupDefinition {
            identifier: message.to_owned(),
            name: message.to_owned(),
            application_name: app.to_owned(),
            description: String::new(),
            groups: Vec::new(),
        })
        .collect();
    ConfigurationPacket {
        config_id: String::new(),
        parameter_definitions: map
            .parameters()
            .iter()
            .map(|parameter| parameter_definition(app, parameter))
            .collect(),
        event_definitions: Vec::new(),
        group_definitions: vec![GroupDefinition {
            identifier: app.to_owned(),
            name: app.to_owned(),
            application_name: app.to_owned(),
            description: format!("{app} channels decoded by ecu-bridge"),
            groups: subgroups,
        }],
        partial_packet: false,
        packet_number: 0,
        total_packet_number: 0,
    }
}

/// The largest serialized `Packet` a v1.3 Stream API hands to Kafka; a bigger one is dropped
/// silently (rule 52).
pub const MAX_PACKET_BYTES: usize = 1_000_000;
/// What the `Packet` envelope adds to its content, at most: the type string, a session key,
/// the id and the field headers.
const ENVELOPE_BYTES: usize = 256;

/// A channel map whose Configuration packet a v1.3 Stream API would drop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the channel map's Configuration packet is {bytes} bytes ({parameters} parameters); a v1.3 \
     Stream API drops packets over {MAX_PACKET_BYTES} bytes silently (rule 52), so ATLAS would \
     show no parameter at all. Publish fewer parameters ([car] include/exclude, \
     `ecu-bridge validate --list` shows them; about {fit} fit), or, with a v2.1 Stream API, \
     set [stream_api] server_version = \"2.1\" to send it in parts"
)]
pub struct ConfigurationTooLarge {
    /// The packet's size with its envelope.
    pub bytes: usize,
    /// Parameters in the map.
    pub parameters: usize,
    /// About how many parameters of this map's average size would fit.
    pub fit: usize,
}

/// Each part of a split configuration stays under this (with its envelope), well below the
/// 1 MB Kafka limit that still applies on v2.1 (rule 52).
pub const PART_BYTES: usize = 900_000;

/// `packet` as sent: itself when it fits in one packet, else parts of at most [`PART_BYTES`]
/// (rule 20): the same `config_id`, `partial_packet` set, numbered 1..=n of n, each with the
/// one top-level group (rule 18) and a run of the parameter definitions.
pub fn configuration_parts(packet: &ConfigurationPacket) -> Vec<ConfigurationPacket> {
    if packet.encoded_len() + ENVELOPE_BYTES <= MAX_PACKET_BYTES {
        return vec![packet.clone()];
    }
    let empty = ConfigurationPacket {
        parameter_definitions: Vec::new(),
        ..packet.clone()
    };
    // Field tag, length and a margin for the part numbers.
    let base = empty.encoded_len() + ENVELOPE_BYTES + 16;
    let mut parts: Vec<ConfigurationPacket> = Vec::new();
    let mut size = 0;
    for definition in &packet.parameter_definitions {
        let len = definition.encoded_len() + 4;
        if parts.is_empty() || size + len > PART_BYTES {
            parts.push(empty.clone());
            size = base;
        }
        if let Some(part) = parts.last_mut() {
            part.parameter_definitions.push(definition.clone());
        }
        size += len;
    }
    let total = u32::try_from(parts.len()).unwrap_or(u32::MAX);
    for (number, part) in (1..).zip(parts.iter_mut()) {
        part.partial_packet = true;
        part.packet_number = number;
        part.total_packet_number = total;
    }
    parts
}

/// The size of `map`'s Configuration packet (with its envelope), or why a v1.3 Stream API
/// could not take it (`split` false); a v2.1 server takes it in parts (`split` true).
pub fn check_configuration_size(
    map: &ChannelMap,
    split: bool,
) -> Result<usize, ConfigurationTooLarge> {
    check_packet_size(&configuration_packet(map), split)
}

/// [`check_configuration_size`] of a packet already built by [`configuration_packet`].
pub fn check_packet_size(
    packet: &ConfigurationPacket,
    split: bool,
) -> Result<usize, ConfigurationTooLarge> {
    // The `config_id` field: a Key Generator key or a UUID, at most 64 bytes, and its header.
    const CONFIG_ID_BYTES: usize = 66;
    let bytes = packet.encoded_len() + CONFIG_ID_BYTES + ENVELOPE_BYTES;
    if bytes <= MAX_PACKET_BYTES || split {
        return Ok(bytes);
    }
    let parameters = packet.parameter_definitions.len();
    let per_parameter = bytes / parameters.max(1);
    Err(ConfigurationTooLarge {
        bytes,
        parameters,
        fit: MAX_PACKET_BYTES / per_parameter.max(1),
    })
}

fn parameter_definition(app: &str, parameter: &Parameter) -> ParameterDefinition {
    let conversion = (!parameter.value_descriptions.is_empty()).then(|| TextConversionDefinition {
        conversion_identifier: format!("{}_TEXT:{app}", parameter.name),
        input_values: parameter
            .value_descriptions
            .iter()
            .map(|(value, _)| *value as f64)
            .collect(),
        string_values: parameter
            .value_descriptions
            .iter()
            .map(|(_, text)| text.clone())
            .collect(),
        default: String::new(),
    });
    ParameterDefinition {
        identifier: parameter.identifier.clone(),
        name: parameter.name.clone(),
        application_name: app.to_owned(),
        description: parameter.description.clone(),
        groups: vec![parameter.message.clone()],
        units: parameter.unit.clone(),
        data_type: DataType::Float64 as i32,
        format_string: format!("%.{}f", parameter.decimals),
        min_value: parameter.min,
        max_value: parameter.max,
        warning_min_value: parameter.min,
        warning_max_value: parameter.max,
        frequencies: parameter.frequency_hz.into_iter().collect(),
        includes_row_data: true,
        includes_synchro_data: false,
        conversion,
        formula: None,
    }
}
