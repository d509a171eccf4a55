//! Builds the Open Streaming `ConfigurationPacket` for a compiled channel map: one
//! ParameterDefinition per parameter and exactly one top-level GroupDefinition (the
//! application) with a subgroup per CAN message (producer rules 16–19, 62–63).

use decoders::channel_map::{ChannelMap, Parameter};

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
