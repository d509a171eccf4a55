//! Integration tests: one binary, modules per area.
mod capture;
mod cli;
mod daemon;
mod frames;
mod links;
mod live;
mod outage;
mod producer;
mod proxy;
mod replay_can;
mod serial;
mod service;
mod signals;
mod stream_api;
mod test_car;
mod udp;
mod util;
