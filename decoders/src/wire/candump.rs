//! Placeholder until the candump transport lands.
