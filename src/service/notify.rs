//! A dependency-free sd_notify client and a progress-driven watchdog.
//!
//! [`Notifier`] sends `READY=1`, `WATCHDOG=1`, `STATUS=…`, `STOPPING=1` and `RELOADING=1` to
//! the datagram socket systemd names in `NOTIFY_SOCKET` (a path, or `@name` for the abstract
//! namespace). Without that variable, or if the socket cannot be used, every call is a no-op:
//! notification never fails the daemon, and sends never block (a full socket drops the message).
//!
//! [`spawn_watchdog`] pings `WATCHDOG=1` only while the pipeline shows it is alive. Liveness is
//! judged by the sans-IO [`StallDetector`] from a [`Progress`] the caller samples at each check:
//! a counter that moved means alive; no movement with nothing pending means idle (a quiet car),
//! also alive; no movement with work pending for `stall_checks` checks in a row means stalled,
//! and the pings stop so that systemd restarts the service once `WatchdogSec` runs out. `STATUS=`
//! lines keep going while stalled, so `systemctl status` says why.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use nix::time::{ClockId, clock_gettime};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// A handle on systemd's notification socket; cheap to clone, inert when there is none.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    /// `None` when not started by systemd with `Type=notify` (or the socket was unusable).
    target: Option<Arc<Target>>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for; inert when it is unset or unusable (logged).
    pub fn from_env() -> Self {
        Self::from_socket_var(std::env::var_os("NOTIFY_SOCKET").as_deref())
    }

    /// As [`from_env`](Self::from_env), for a given `NOTIFY_SOCKET` value (tests, wrappers).
    pub fn from_socket_var(value: Option<&OsStr>) -> Self {
        match value {
            None => Self::default(),
            Some(value) if value.is_empty() => Self::default(),
            Some(value) => Self::connect(value).unwrap_or_else(|error| {
                tracing::warn!(
                    notify_socket = %value.to_string_lossy(),
                    %error,
                    "NOTIFY_SOCKET unusable; systemd notifications are off"
                );
                Self::default()
            }),
        }
    }

    /// A notifier sending to `socket`: a filesystem path, or `@name` in the abstract namespace.
    pub fn connect(socket: &OsStr) -> io::Result<Self> {
        let bytes = socket.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
            Some(b'/') => SocketAddr::from_pathname(socket)?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "only absolute paths and @abstract names are supported",
                ));
            }
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            target: Some(Arc::new(Target { socket, addr })),
        })
    }

    /// Whether notifications go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `READY=1`: start-up is complete (systemd then runs units ordered after this one).
    pub fn ready(&self) {
        self.notify("READY=1");
    }

    /// `WATCHDOG=1`: the service is alive. Prefer [`spawn_watchdog`], which checks first.
    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }

    /// `STATUS=…`: one line shown by `systemctl status` (newlines become spaces).
    pub fn status(&self, status: &str) {
        self.notify(&status_line(status));
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (systemd ≥ 253 matches reloads by that timestamp);
    /// send [`ready`](Self::ready) when the reload is done.
    pub fn reloading(&self) {
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    /// Sends `state` (newline-separated `KEY=value` assignments) as one datagram. Failures are
    /// logged at debug level and otherwise ignored: systemd may be gone, the daemon must not be.
    pub fn notify(&self, state: &str) {
        let Some(target) = &self.target else {
            return;
        };
        if let Err(error) = target.socket.send_to_addr(state.as_bytes(), &target.addr) {
            tracing::debug!(%error, "sd_notify message not sent");
        }
    }

    /// systemd's watchdog timeout (`WATCHDOG_USEC`), if the watchdog is enabled for this process.
    pub fn watchdog_interval() -> Option<Duration> {
        watchdog_interval_from(
            std::env::var_os("WATCHDOG_USEC").as_deref(),
            std::env::var_os("WATCHDOG_PID").as_deref(),
            std::process::id(),
        )
    }
}

/// The watchdog timeout from `WATCHDOG_USEC` and `WATCHDOG_PID` values, for process `own_pid`:
/// `None` when unset, zero or malformed, or when `WATCHDOG_PID` names another process.
pub fn watchdog_interval_from(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    own_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = pid {
        let pid: u32 = pid.to_str()?.parse().ok()?;
        if pid != own_pid {
            return None;
        }
    }
    let usec: u64 = usec?.to_str()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// What the pipeline reports at each watchdog check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// A counter the last stage bumps as it finishes work (packets published): moving = alive.
    pub completed: u64,
    /// Whether work is waiting for that stage (frames read but not published, a full channel),
    /// so that a still counter means stuck rather than idle.
    pub pending: bool,
}

/// The watchdog's verdict at one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The counter moved since the last check.
    Advancing,
    /// Nothing moved and nothing waits: a quiet car, not a hung bridge.
    Idle,
    /// Work waits and nothing moved for this many checks, fewer than the limit; still pinging.
    Waiting {
        /// Consecutive checks without progress.
        checks: u32,
    },
    /// Work waits and nothing moved for this many checks, at least the limit; pings stop.
    Stalled {
        /// Consecutive checks without progress.
        checks: u32,
    },
}

impl Health {
    /// Whether this verdict earns a `WATCHDOG=1`.
    pub fn is_alive(self) -> bool {
        !matches!(self, Self::Stalled { .. })
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Advancing => f.write_str("running"),
            Self::Idle => f.write_str("idle"),
            Self::Waiting { checks } => write!(f, "no progress for {checks} checks"),
            Self::Stalled { checks } => {
                write!(f, "stalled: work pending, no progress for {checks} checks")
            }
        }
    }
}

/// Judges liveness from successive [`Progress`] samples; no IO, no clock.
#[derive(Debug, Clone)]
pub struct StallDetector {
    /// The counter at the previous check; `None` before the first.
    last: Option<u64>,
    /// Consecutive checks with work pending and the counter still.
    still: u32,
    /// `still` at which the verdict becomes [`Health::Stalled`].
    limit: u32,
}

impl StallDetector {
    /// A detector that calls the pipeline stalled after `stall_checks` (at least 1) still checks.
    pub fn new(stall_checks: u32) -> Self {
        Self {
            last: None,
            still: 0,
            limit: stall_checks.max(1),
        }
    }

    /// The verdict for the next sample. The first sample counts as progress (start-up).
    pub fn handle_check(&mut self, progress: Progress) -> Health {
        let moved = self.last != Some(progress.completed);
        self.last = Some(progress.completed);
        if moved {
            self.still = 0;
            return Health::Advancing;
        }
        if !progress.pending {
            self.still = 0;
            return Health::Idle;
        }
        self.still = self.still.saturating_add(1);
        if self.still >= self.limit {
            Health::Stalled { checks: self.still }
        } else {
            Health::Waiting { checks: self.still }
        }
    }
}

/// How often the watchdog checks, and how much stillness it forgives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogPolicy {
    /// Time between checks (each alive check pings): half of systemd's `WatchdogSec`.
    pub period: Duration,
    /// Consecutive checks with work pending and no progress after which pings stop.
    pub stall_checks: u32,
}

impl WatchdogPolicy {
    /// Checks every `watchdog / 2` and forgives `grace` of stillness with work pending (in whole
    /// checks, at least one). systemd acts `watchdog` after the last ping, so a stall is acted
    /// on within about `grace + watchdog`. Make `grace` longer than the publish stage's retry
    /// horizon, or report `pending = false` while it backs off, unless a restart should cut
    /// a Stream API outage short.
    pub fn new(watchdog: Duration, grace: Duration) -> Self {
        let period = (watchdog / 2).max(Duration::from_millis(1));
        let checks = grace.as_nanos().div_ceil(period.as_nanos()).max(1);
        Self {
            period,
            stall_checks: u32::try_from(checks).unwrap_or(u32::MAX),
        }
    }
}

/// One watchdog check, handed to the status closure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Check {
    /// The verdict.
    pub health: Health,
    /// The sample it was made from.
    pub progress: Progress,
    /// Growth of `progress.completed` per second since the previous check.
    pub per_second: f64,
}

/// Spawns the watchdog: every `policy.period` it samples `progress`, sends one datagram with
/// `WATCHDOG=1` (only when [`Health::is_alive`]) and `STATUS=` + `status(&check)`, and logs
/// when the pipeline stalls or recovers. Runs until aborted; abort it before `STOPPING=1`.
pub fn spawn_watchdog<P, S>(
    notifier: Notifier,
    policy: WatchdogPolicy,
    mut progress: P,
    mut status: S,
) -> JoinHandle<()>
where
    P: FnMut() -> Progress + Send + 'static,
    S: FnMut(&Check) -> String + Send + 'static,
{
    tokio::spawn(async move {
        let mut detector = StallDetector::new(policy.stall_checks);
        let mut ticks = tokio::time::interval(policy.period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut previous: Option<(Instant, u64)> = None;
        let mut was_alive = true;
        loop {
            let now = ticks.tick().await;
            let sample = progress();
            let health = detector.handle_check(sample);
            let per_second = previous.map_or(0.0, |(then, count)| {
                let seconds = now.duration_since(then).as_secs_f64();
                let delta = sample.completed.saturating_sub(count) as f64;
                if seconds > 0.0 { delta / seconds } else { 0.0 }
            });
            previous = Some((now, sample.completed));
            let check = Check {
                health,
                progress: sample,
                per_second,
            };
            let line = status_line(&status(&check));
            if health.is_alive() {
                notifier.notify(&format!("WATCHDOG=1\n{line}"));
            } else {
                notifier.notify(&line);
            }
            log_change(&notifier, was_alive, health, policy.period);
            was_alive = health.is_alive();
        }
    })
}

/// Logs a change of verdict. Under systemd it speaks of the watchdog, which acts on it;
/// without systemd no watchdog exists for the reader, so the line says what the bridge sees.
fn log_change(notifier: &Notifier, was_alive: bool, health: Health, period: Duration) {
    let checks = match health {
        Health::Stalled { checks } | Health::Waiting { checks } => checks,
        Health::Advancing | Health::Idle => 0,
    };
    let still = period.saturating_mul(checks).as_secs();
    match (was_alive, health.is_alive(), notifier.is_enabled()) {
        (true, false, true) => tracing::error!(%health, "pipeline stalled; watchdog pings stop"),
        (false, true, true) => tracing::warn!(%health, "pipeline moving again; pings resume"),
        (true, false, false) => {
            tracing::warn!("decoded samples have waited {still} s with no packet acknowledged")
        }
        (false, true, false) => tracing::info!("packets are being acknowledged again"),
        _ => {}
    }
}

/// `STATUS=` and `status` on one line (a newline would start another assignment).
fn status_line(status: &str) -> String {
    format!("STATUS={}", status.replace(['\n', '\r'], " "))
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC` against.
fn monotonic_usec() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |now| {
        let seconds = u64::try_from(now.tv_sec()).unwrap_or(0);
        let micros = u64::try_from(now.tv_nsec() / 1000).unwrap_or(0);
        seconds.saturating_mul(1_000_000).saturating_add(micros)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(completed: u64, pending: bool) -> Progress {
        Progress { completed, pending }
    }

    #[test]
    fn moving_counter_is_alive_and_idle_is_not_a_stall() {
        let mut detector = StallDetector::new(2);
        assert_eq!(detector.handle_check(sample(0, true)), Health::Advancing);
        assert_eq!(detector.handle_check(sample(5, true)), Health::Advancing);
        for _ in 0..10 {
            assert_eq!(detector.handle_check(sample(5, false)), Health::Idle);
        }
    }

    #[test]
    fn pending_work_without_progress_stalls_after_the_limit_and_recovers() {
        let mut detector = StallDetector::new(3);
        detector.handle_check(sample(7, false));
        assert_eq!(
            detector.handle_check(sample(7, true)),
            Health::Waiting { checks: 1 }
        );
        assert_eq!(
            detector.handle_check(sample(7, true)),
            Health::Waiting { checks: 2 }
        );
        let stalled = detector.handle_check(sample(7, true));
        assert_eq!(stalled, Health::Stalled { checks: 3 });
        assert!(!stalled.is_alive());
        assert!(!detector.handle_check(sample(7, true)).is_alive());
        assert_eq!(detector.handle_check(sample(8, true)), Health::Advancing);
        assert_eq!(
            detector.handle_check(sample(8, true)),
            Health::Waiting { checks: 1 }
        );
    }

    #[test]
    fn idle_check_resets_the_stall_count() {
        let mut detector = StallDetector::new(2);
        detector.handle_check(sample(1, true));
        assert_eq!(
            detector.handle_check(sample(1, true)),
            Health::Waiting { checks: 1 }
        );
        assert_eq!(detector.handle_check(sample(1, false)), Health::Idle);
        assert_eq!(
            detector.handle_check(sample(1, true)),
            Health::Waiting { checks: 1 }
        );
    }

    #[test]
    fn policy_checks_at_half_the_timeout_and_rounds_grace_up() {
        let policy = WatchdogPolicy::new(Duration::from_secs(30), Duration::from_secs(40));
        assert_eq!(policy.period, Duration::from_secs(15));
        assert_eq!(policy.stall_checks, 3);
        let policy = WatchdogPolicy::new(Duration::from_secs(30), Duration::ZERO);
        assert_eq!(policy.stall_checks, 1);
    }

    #[test]
    fn watchdog_interval_honours_watchdog_pid() {
        let usec = Some(OsStr::new("30000000"));
        let thirty = Some(Duration::from_secs(30));
        assert_eq!(watchdog_interval_from(usec, None, 42), thirty);
        assert_eq!(
            watchdog_interval_from(usec, Some(OsStr::new("42")), 42),
            thirty
        );
        assert_eq!(
            watchdog_interval_from(usec, Some(OsStr::new("41")), 42),
            None
        );
        assert_eq!(
            watchdog_interval_from(Some(OsStr::new("0")), None, 42),
            None
        );
        assert_eq!(
            watchdog_interval_from(Some(OsStr::new("x")), None, 42),
            None
        );
        assert_eq!(watchdog_interval_from(None, None, 42), None);
    }

    #[test]
    fn absent_or_unusable_socket_makes_every_call_a_no_op() {
        for value in [None, Some(""), Some("relative/path"), Some("vsock:2:1")] {
            let notifier = Notifier::from_socket_var(value.map(OsStr::new));
            assert!(!notifier.is_enabled(), "{value:?}");
            notifier.ready();
            notifier.status("a\nb");
            notifier.reloading();
            notifier.stopping();
        }
        // A path nobody listens on: enabled, and sends fail quietly.
        let notifier = Notifier::from_socket_var(Some(OsStr::new("/nonexistent/notify")));
        assert!(notifier.is_enabled());
        notifier.ready();
    }

    #[test]
    fn status_lines_stay_one_assignment() {
        assert_eq!(status_line("a\nWATCHDOG=1\r"), "STATUS=a WATCHDOG=1 ");
        assert!(monotonic_usec() > 0);
    }
}
