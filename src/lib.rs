//! ecu-bridge library (skeleton).
