//! Placeholder until the slcan transport lands.
