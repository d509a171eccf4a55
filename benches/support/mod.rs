//! What the end-to-end benchmarks share: our Stream API started as a separate process, and a
//! process's CPU and peak resident set as the kernel accounts them.

// Each benchmark uses part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::resource::{UsageWho, getrusage};

/// `ecu-bridge stream-api` on 127.0.0.1, port chosen by the kernel, recording off; stopped
/// when dropped.
pub struct StreamApiProcess {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl StreamApiProcess {
    pub fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ecu-bridge"))
            .args(["stream-api", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ecu-bridge stream-api");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let address = loop {
            let line = lines.next().expect("server log line").expect("utf-8");
            if let Some(rest) = line.split("address=").nth(1) {
                break rest.split_whitespace().next().expect("address").to_owned();
            }
        };
        // Keep draining the server's log so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, address }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for StreamApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU of this process, or of its waited-for children.
pub fn rusage_cpu(who: UsageWho) -> Duration {
    let usage = getrusage(who).expect("getrusage");
    let to_duration = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(tv.tv_sec() as u64) + Duration::from_micros(tv.tv_usec() as u64)
    };
    to_duration(usage.user_time()) + to_duration(usage.system_time())
}

/// Peak resident set (`VmHWM`) of `/proc/PROCESS` (`self` or a pid), in MiB. Not
/// `getrusage`'s `ru_maxrss`: Linux carries that across `execve`, so it would report the peak
/// of cargo, which started the benchmark.
pub fn vm_hwm_mib(process: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
