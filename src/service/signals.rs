//! Unix signals as the daemon hears them: SIGTERM or SIGINT stop it, SIGHUP reloads the
//! channel map, SIGUSR1 ends the session so the next frame begins a new one. The library entry point takes these as a future and a channel, so tests drive
//! the daemon without signals.

use std::path::PathBuf;

use decoders::channel_map::ChannelMap;
use tokio::sync::mpsc;

use crate::publish::configuration::check_configuration_size;

use super::notify::Notifier;
use crate::config::Config;

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// On every SIGUSR1, asks the pipeline to end the open session: the next frame begins a new
/// one (`docs/sessions.md`). `None` when the signal cannot be listened for.
pub fn new_session_on_sigusr1() -> Option<mpsc::Receiver<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut signals = match signal(SignalKind::user_defined1()) {
        Ok(signals) => signals,
        Err(error) => {
            tracing::warn!(%error, "SIGUSR1 (new session) unavailable");
            return None;
        }
    };
    let (asks, received) = mpsc::channel(1);
    tokio::spawn(async move {
        while signals.recv().await.is_some() {
            tracing::info!("SIGUSR1: a new session begins with the next frame");
            // One waiting request is enough: a second signal before it is served asks for
            // the same thing.
            let _ = asks.try_send(());
        }
    });
    Some(received)
}

/// On every SIGHUP, reloads the configuration at `path` and sends its compiled channel map to
/// the pipeline. A map that fails to load or compile is rejected with the reason, and the
/// pipeline keeps the map it has. Only the channel map reloads: sources and the Stream API
/// target need a restart.
pub fn reload_on_sighup(path: PathBuf, notifier: Notifier) -> Option<mpsc::Receiver<ChannelMap>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "SIGHUP reload unavailable");
            return None;
        }
    };
    let (reloads, received) = mpsc::channel(1);
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            notifier.reloading();
            let loaded = Config::load(&path).and_then(|config| {
                let split = config.server_version.reads_configuration_parts();
                config
                    .load_channel_map()
                    .map(|(map, warnings)| (map, warnings, split))
            });
            notifier.ready();
            match loaded {
                Ok((map, _, split)) if let Err(error) = check_configuration_size(&map, split) => {
                    tracing::error!(%error, "SIGHUP: reload rejected; keeping the current channel map");
                }
                Ok((map, warnings, _)) => {
                    tracing::info!(
                        config = %path.display(),
                        parameters = map.parameters().len(),
                        dbc_warnings = warnings.len(),
                        "SIGHUP: channel map reloaded"
                    );
                    if reloads.send(map).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: reload rejected; keeping the current channel map");
                }
            }
        }
    });
    Some(received)
}
