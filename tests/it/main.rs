//! Integration tests: one binary, modules per area.
mod capture;
mod live;
mod producer;
mod replay_can;
mod serial;
mod service;
mod stream_api;
mod udp;
mod util;
