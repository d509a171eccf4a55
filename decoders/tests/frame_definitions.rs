//! Frame definition validation: every load-time problem names the file, the line and what is
//! wrong; the shipped definitions load cleanly.

use decoders::frame::{DefinitionError, FrameDefinition};

const HEAD: &str = r#"[frame]
name = "t"
application = "T"
fixed_length = 8
"#;

/// Parses `HEAD` + `body`; the error it gives.
fn error(body: &str) -> DefinitionError {
    let text = format!("{HEAD}{body}");
    match FrameDefinition::parse("t.toml", &text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

fn assert_error(body: &str, line: u32, words: &[&str]) {
    let e = error(body);
    assert_eq!(e.file, "t.toml");
    assert_eq!(e.line, line, "{e}");
    for word in words {
        assert!(e.message.contains(word), "{e} lacks {word:?}");
    }
    assert!(
        e.to_string().starts_with(&format!("t.toml:{line}: ")),
        "{e}"
    );
}

#[test]
fn shipped_definitions_load() {
    for (file, text) in [
        (
            "f1_23_car_telemetry.toml",
            include_str!("../definitions/f1_23_car_telemetry.toml"),
        ),
        (
            "f1_24_car_telemetry.toml",
            include_str!("../definitions/f1_24_car_telemetry.toml"),
        ),
        (
            "example_serial_ecu.toml",
            include_str!("../definitions/example_serial_ecu.toml"),
        ),
    ] {
        let definition = FrameDefinition::parse(file, text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!definition.messages.is_empty());
    }
}

#[test]
fn overlapping_fields() {
    let body = r#"
[[message]]
name = "M"

[[message.field]]
name = "a"
offset = 0
type = "u16"

[[message.field]]
name = "b"
offset = 1
type = "u8"
"#;
    assert_error(body, 15, &["field `b`", "overlaps field `a`", "line 10"]);
}

#[test]
fn bit_fields_may_share_a_byte_but_not_bits() {
    let body = r#"
[[message]]
name = "M"

[[message.field]]
name = "a"
offset = 0
type = "u8"
bit_offset = 0
bit_width = 4

[[message.field]]
name = "b"
offset = 0
type = "u8"
bit_offset = 4
bit_width = 4

[[message.field]]
name = "c"
offset = 0
type = "u8"
bit_offset = 3
bit_width = 2
"#;
    assert_error(body, 24, &["field `c`", "overlaps"]);
    let fine = body
        .split("\n[[message.field]]\nname = \"c\"")
        .next()
        .unwrap_or_default();
    assert!(FrameDefinition::parse("t.toml", &format!("{HEAD}{fine}")).is_ok());
}

#[test]
fn field_past_the_frame_end() {
    let body = r#"
[[message]]
name = "M"

[[message.field]]
name = "far"
offset = 6
type = "u32"
"#;
    assert_error(
        body,
        10,
        &[
            "field `far`",
            "ends at byte 10",
            "past the frame end (8 bytes)",
        ],
    );
}

#[test]
fn unknown_type_and_bad_endianness() {
    let field = |key: &str| {
        format!(
            "\n[[message]]\nname = \"M\"\n\n[[message.field]]\nname = \"x\"\noffset = 0\n{key}\n"
        )
    };
    assert_error(&field("type = \"u7\""), 12, &["u7"]);
    assert_error(
        &field("type = \"u8\"\nendian = \"middle\""),
        13,
        &["middle"],
    );
    assert_error(
        &field("type = \"u8\"\nendianness = \"big\""),
        13,
        &["endianness"],
    );
}

#[test]
fn duplicate_names_including_expanded_elements() {
    let body = r#"
[[message]]
name = "M"

[[message.field]]
name = "t"
offset = 0
type = "u8"
count = 2
names = ["a", "b"]

[[message.field]]
name = "t_b"
offset = 4
type = "u8"
"#;
    assert_error(body, 17, &["duplicate name `t_b`", "first at line 10"]);
}

#[test]
fn bad_bit_field_and_element_names() {
    let bits = "\n[[message]]\nname = \"M\"\n\n[[message.field]]\nname = \"x\"\noffset = 0\ntype = \"u8\"\nbit_offset = 6\nbit_width = 3\n";
    assert_error(bits, 14, &["bit field `x`", "does not fit"]);
    let names = "\n[[message]]\nname = \"M\"\n\n[[message.field]]\nname = \"x\"\noffset = 0\ntype = \"u8\"\ncount = 3\nnames = [\"a\"]\n";
    assert_error(names, 13, &["1 names for 3 elements"]);
}

#[test]
fn array_selector_and_record_problems() {
    let array = |select: &str, field_offset: u32| {
        format!(
            "\n[[message]]\nname = \"M\"\n\n[[message.field]]\nname = \"idx\"\noffset = 0\ntype = \"u8\"\npublish = false\n\n[[message.array]]\nname = \"car\"\noffset = 2\ncount = 3\nstride = 2\nselect = \"{select}\"\n\n[[message.array.field]]\nname = \"v\"\noffset = {field_offset}\ntype = \"u8\"\n"
        )
    };
    assert!(FrameDefinition::parse("t.toml", &format!("{HEAD}{}", array("idx", 1))).is_ok());
    assert_error(
        &array("nope", 1),
        20,
        &["select names no single field `nope`"],
    );
    assert_error(&array("idx", 2), 24, &["field `v`", "past the stride 2"]);
}

#[test]
fn toml_syntax_errors_and_framing_problems_have_lines() {
    assert_error("\n[[message]]\nname = \"M\"\noops\n", 8, &[]);
    let mut text = HEAD.replace("fixed_length = 8\n", "");
    text.push_str("[frame.message_id]\noffset = 0\ntype = \"f32\"\n");
    let e = FrameDefinition::parse("t.toml", &text)
        .err()
        .map(|e| (e.line, e.message));
    assert!(
        matches!(&e, Some((4, m)) if m.contains("unsigned")),
        "{e:?}"
    );
    let e = error(
        "\n[frame.message_id]\noffset = 0\ntype = \"u8\"\n\n[[message]]\nname = \"M\"\nid = 1\n\n[[message.field]]\nname = \"x\"\noffset = 0\ntype = \"u8\"\n",
    );
    assert!(e.message.contains("overlaps the message id"), "{e}");
}

#[test]
fn hostile_sizes_are_refused_before_anything_is_allocated() {
    let huge_count = "\n[[message]]\nname = \"M\"\n\n[[message.field]]\nname = \"x\"\noffset = 0\ntype = \"u8\"\ncount = 1000000000000\n";
    assert_error(huge_count, 11, &["past the largest frame"]);
    let text = HEAD.replace("fixed_length = 8", "fixed_length = 1000000000000");
    let e = FrameDefinition::parse("t.toml", &format!("{text}\n[[message]]\nname = \"M\"\n"));
    assert!(matches!(e, Err(e) if e.line == 4 && e.message.contains("frame lengths")));
    let grid = "\n[[message]]\nname = \"M\"\n\n[[message.array]]\nname = \"a\"\noffset = 0\ncount = 2000\nstride = 1000\n";
    assert_error(grid, 12, &["array `a`"]);
}
