//! Placeholder until the cannelloni transport lands.
