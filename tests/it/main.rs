//! Integration tests: one binary, modules per area.
mod stream_api;
mod util;
