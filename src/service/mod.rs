//! Running as a systemd service: readiness and watchdog notifications ([`notify`]) and the
//! Prometheus `/metrics` and `/health` endpoint ([`metrics_http`], axum on hyper; text from
//! [`exposition`], prometheus-client over the counters declared in `src/telemetry.rs`).
//!
//! Nothing here starts the pipeline: [`crate::daemon`] decides when the bridge is ready and
//! when stopping begins; [`runtime`] turns the pipeline's counters into progress and status,
//! [`health`] into `/health`'s verdict, [`summary`] into `run`'s periodic log line;
//! [`signals`] turns SIGTERM/SIGINT and SIGHUP into a stop future and reloaded maps. The
//! systemd pieces are inert when not under systemd (no `NOTIFY_SOCKET`, no metrics listener).
//!
//! The unit file, an example configuration and the receive-buffer sysctl drop-in live in
//! `systemd/`; README.md ("Installing as a systemd service") says how they fit together.

pub mod exposition;
pub mod health;
pub mod metrics_http;
pub mod notify;
pub mod runtime;
pub mod signals;
pub mod summary;

pub use runtime::{Service, ServiceOptions};
