//! Placeholder: the compiled channel map.
