//! ecu-bridge library (skeleton).
pub mod proto;
