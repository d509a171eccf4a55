//! Running as a systemd service: readiness and watchdog notifications ([`notify`]) and the
//! Prometheus `/metrics` and `/health` endpoint ([`metrics_http`], axum on hyper; text from
//! [`exposition`], prometheus-client over the counters declared in `src/telemetry.rs`).
//!
//! Nothing here starts the pipeline or reads the configuration: `run` decides when the bridge
//! is ready, what counts as progress and which counters to export, and hands those in. Every
//! piece is inert when not under systemd (no `NOTIFY_SOCKET`, no metrics listener).
//!
//! The unit file, an example configuration and the receive-buffer sysctl drop-in live in
//! `systemd/`; README.md ("Installing as a systemd service") says how they fit together.

pub mod exposition;
pub mod metrics_http;
pub mod notify;
