//! The test car shared by the integration tests: `fixtures/test-car/test_car.dbc`, a DBC
//! written for the tests (Intel and Motorola, signed, float, extended id, multiplexing).

use std::path::{Path, PathBuf};

use decoders::dbc::{Dbc, parse_dbc};

/// Where the test car's DBC is.
pub fn dbc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/test-car/test_car.dbc")
}

/// The test car's DBC, parsed.
pub fn dbc() -> Dbc {
    let text = std::fs::read_to_string(dbc_path()).expect("test DBC");
    parse_dbc("test_car.dbc", &text)
        .expect("test DBC parses")
        .dbc
}
