//! ecu-bridge binary (skeleton).
fn main() {}
