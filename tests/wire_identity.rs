//! Wire identity: our `proto/` files, compiled to a descriptor set, must match the official
//! Open Streaming interface exactly — every service, method (and its streaming flags), message,
//! field number, type, label, oneof and enum value — as recorded in
//! `tests/data/wire-expectations.tsv`, which was taken from the interface facts.

use std::collections::BTreeSet;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

const PROTO_FILES: [&str; 3] = [
    "ma/streaming/open_data/v1/open_data.proto",
    "ma/streaming/api/v1/api.proto",
    "ma/streaming/key_generator/v1/key_generator.proto",
];

fn compiled() -> FileDescriptorSet {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let files = PROTO_FILES.map(|file| format!("{root}/{file}"));
    protox::compile(files, [root]).expect("proto files compile")
}

fn expected() -> BTreeSet<String> {
    include_str!("data/wire-expectations.tsv")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn scalar_name(kind: Type) -> &'static str {
    match kind {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group | Type::Message | Type::Enum => "",
    }
}

/// The field's type as the expectation table writes it: a scalar name, a fully qualified
/// message or enum name, or `map<K,V>` for a map entry.
fn field_type(message: &DescriptorProto, field: &prost_types::FieldDescriptorProto) -> String {
    let type_name = field.type_name().trim_start_matches('.');
    if let Some(entry) = message.nested_type.iter().find(|nested| {
        nested.options.as_ref().is_some_and(|o| o.map_entry())
            && type_name.ends_with(&format!(".{}", nested.name()))
    }) {
        let key = field_type(entry, &entry.field[0]);
        let value = field_type(entry, &entry.field[1]);
        return format!("map<{key},{value}>");
    }
    match field.r#type() {
        Type::Message | Type::Enum | Type::Group => type_name.to_owned(),
        scalar => scalar_name(scalar).to_owned(),
    }
}

fn describe(set: &FileDescriptorSet) -> BTreeSet<String> {
    let mut rows = BTreeSet::new();
    let ours = set
        .file
        .iter()
        .filter(|file| file.package().starts_with("ma.streaming."));
    for file in ours {
        let package = file.package();
        for service in &file.service {
            for method in &service.method {
                let streaming = match (method.client_streaming(), method.server_streaming()) {
                    (true, true) => "clientserver",
                    (true, false) => "client",
                    (false, true) => "server",
                    (false, false) => "",
                };
                rows.insert(format!(
                    "method\t{package}.{}/{}\t{}\t{}\t{streaming}",
                    service.name(),
                    method.name(),
                    method.input_type().trim_start_matches('.'),
                    method.output_type().trim_start_matches('.'),
                ));
            }
        }
        for message in &file.message_type {
            let full = format!("{package}.{}", message.name());
            if message.field.is_empty() {
                rows.insert(format!("message\t{full}\t(no fields)"));
            }
            for field in &message.field {
                let proto3_optional = field.proto3_optional();
                let is_map = field_type(message, field).starts_with("map<");
                let label = match field.label() {
                    Label::Repeated if !is_map => "repeated",
                    _ if proto3_optional => "optional",
                    _ => "",
                };
                let oneof = match field.oneof_index {
                    Some(index) if !proto3_optional => message.oneof_decl[index as usize].name(),
                    _ => "",
                };
                rows.insert(format!(
                    "field\t{full}.{}\t{}\t{}\t{label}\t{oneof}",
                    field.name(),
                    field.number(),
                    field_type(message, field),
                ));
            }
        }
        for enumeration in &file.enum_type {
            for value in &enumeration.value {
                rows.insert(format!(
                    "enum\t{package}.{}.{}\t{}",
                    enumeration.name(),
                    value.name(),
                    value.number()
                ));
            }
        }
    }
    rows
}

#[test]
fn protos_are_wire_identical_to_the_official_interface() {
    let ours = describe(&compiled());
    let official = expected();
    let missing: Vec<_> = official.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&official).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "proto/ differs from the official interface\n  expected but not in proto/:\n    {}\n  in proto/ but not expected:\n    {}",
        missing
            .iter()
            .map(|row| row.replace('\t', " "))
            .collect::<Vec<_>>()
            .join("\n    "),
        extra
            .iter()
            .map(|row| row.replace('\t', " "))
            .collect::<Vec<_>>()
            .join("\n    "),
    );
    assert_eq!(
        official.len(),
        338,
        "the expectation table lost or gained rows"
    );
}

#[test]
fn packages_and_files_follow_the_official_layout() {
    let set = compiled();
    let layout: BTreeSet<_> = set
        .file
        .iter()
        .filter(|file| !file.name().starts_with("google/"))
        .map(|file| {
            (
                file.name().to_owned(),
                file.package().to_owned(),
                file.syntax().to_owned(),
            )
        })
        .collect();
    let official: BTreeSet<_> = [
        ("ma/streaming/api/v1/api.proto", "ma.streaming.api.v1"),
        (
            "ma/streaming/key_generator/v1/key_generator.proto",
            "ma.streaming.key_generator.v1",
        ),
        (
            "ma/streaming/open_data/v1/open_data.proto",
            "ma.streaming.open_data.v1",
        ),
    ]
    .into_iter()
    .map(|(file, package)| (file.to_owned(), package.to_owned(), "proto3".to_owned()))
    .collect();
    assert_eq!(layout, official);
}
