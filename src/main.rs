//! The `ecu-bridge` command line: parses arguments, sets up logging, and hands over to the
//! library's commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod commands;

use clap::{Parser, Subcommand};
use commands::LogFormat;

/// Carries ECU telemetry (CAN captures today) into the Open Streaming Stream API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Log line format: `plain` (no colours or timestamps under systemd) or `json`.
    #[arg(long, global = true, default_value = "plain")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay capture files (candump logs, pcapng and serial recordings, detected by content)
    /// through the pipeline into the Stream API; exits non-zero when nothing was published or
    /// too many inputs were rejected.
    Replay(commands::ReplayArgs),
    /// Run the bridge on the configuration's live sources until SIGTERM or SIGINT.
    Run {
        /// The car's bridge configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Also capture every raw input into this folder (as `record` does).
        #[arg(long, alias = "record")]
        capture: Option<PathBuf>,
    },
    /// Capture live traffic exactly as received (pcapng, candump -L, serial logs); no publishing.
    Record {
        /// The car's bridge configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Folder for the capture files.
        #[arg(long)]
        out: PathBuf,
        /// Stop after this long (90s, 5m, 2h); otherwise at Ctrl-C or SIGTERM.
        #[arg(long, value_parser = commands::parse_duration)]
        duration: Option<std::time::Duration>,
    },
    /// Run our test Stream API server (h2c gRPC), checking every producer rule it can see.
    StreamApi {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:13579")]
        listen: SocketAddr,
        /// Reject protocol violations with INVALID_ARGUMENT instead of only counting them.
        #[arg(long)]
        strict: bool,
        /// Append everything received to this recording (rebuilds state from it if it exists).
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// Summarise a Stream API recording (sessions, parameters, samples, markers, violations),
    /// or show the values of its parameters.
    Inspect {
        /// The recording.
        file: PathBuf,
        /// Parameters for --values, --csv and --plot: `Name:App` identifiers, or `Name` alone
        /// when one application has it. --csv takes every parameter when none is named.
        #[arg(value_name = "PARAM")]
        parameters: Vec<String>,
        /// Print the time (ISO-8601 UTC, ns) and value of every sample of the named parameters.
        #[arg(long)]
        values: bool,
        /// Write the parameters as CSV: one `time_utc` column, one column per parameter, one
        /// row per timestamp (empty where a parameter has no sample then).
        #[arg(long, value_name = "OUT.csv")]
        csv: Option<PathBuf>,
        /// Draw the named parameters over time into a PNG: one panel each, laps as lines.
        #[arg(long, value_name = "OUT.png")]
        plot: Option<PathBuf>,
    },
    /// Write a commented starting configuration for a car on built-in ECU profiles.
    Init {
        /// A built-in profile (`ecu-bridge profiles`); repeat for several.
        #[arg(long = "profile", required = true)]
        profiles: Vec<String>,
        /// `udp:0.0.0.0:20000` (a cannelloni gateway) or `serial:/dev/serial/by-id/...` (SLCAN).
        #[arg(long)]
        source: String,
        /// CAN bit rate of a serial adapter (default: the profile's).
        #[arg(long)]
        can_bitrate: Option<u32>,
        /// Write to this new file (never overwritten) instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show the latest value and rate of every parameter of a running bridge, live.
    Watch {
        /// The bridge's metrics endpoint (`[service] metrics_listen`).
        #[arg(long, default_value = ecu_bridge::init::DEFAULT_METRICS_ADDRESS)]
        endpoint: String,
    },
    /// List the built-in ECU profiles (`[car] profile = ["name"]`) with their coverage.
    Profiles,
    /// Simulate a TunerStudio ECU (Speeduino, rusEFI …) from its INI on a pseudo-terminal or
    /// a TCP port, with controlled values and injected faults.
    SimulateEcu(commands::SimulateEcu),
    /// Check a configuration and the DBC files it names; exits non-zero on any error.
    Validate {
        /// The car's bridge configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Also list every parameter it will publish: identifier, source, unit, range, rate.
        #[arg(long)]
        list: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let workers = match &cli.command {
        Command::Replay(args) => args.worker_threads(),
        _ => None,
    };
    match runtime(workers) {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime for `workers` threads: one runs every task on this thread, more a work-stealing
/// pool of that size, `None` one worker per core (or `TOKIO_WORKER_THREADS`).
fn runtime(workers: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

async fn run(cli: Cli) -> ExitCode {
    commands::init_logging(cli.log_format);
    let result = match cli.command {
        Command::Replay(args) => commands::replay(args).await,
        Command::Run { config, capture } => commands::run(&config, capture).await,
        Command::Record {
            config,
            out,
            duration,
        } => commands::record(&config, &out, duration).await,
        Command::StreamApi {
            listen,
            strict,
            record,
        } => commands::stream_api(listen, strict, record).await,
        Command::Inspect {
            file,
            parameters,
            values,
            csv,
            plot,
        } => commands::inspect(&file, &parameters, values, csv.as_deref(), plot.as_deref()),
        Command::Init {
            profiles,
            source,
            can_bitrate,
            out,
        } => commands::init(profiles, &source, can_bitrate, out.as_deref()),
        Command::Watch { endpoint } => commands::watch(&endpoint).await,
        Command::Profiles => {
            commands::profiles();
            Ok(())
        }
        Command::Validate { config, list } => commands::validate(&config, list),
        Command::SimulateEcu(options) => commands::simulate_ecu(options).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::runtime::RuntimeFlavor;

    use super::*;

    /// The worker threads a replay with `flags` gets.
    fn replay_threads(flags: &[&str]) -> Result<Option<usize>, clap::Error> {
        let mut args = vec!["ecu-bridge", "replay", "--config", "car.toml"];
        args.extend(flags);
        args.push("drive.log");
        match Cli::try_parse_from(args)?.command {
            Command::Replay(replay) => Ok(replay.worker_threads()),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_max_speed_replay_runs_on_one_thread_unless_told_otherwise() {
        let threads = |flags: &[&str]| replay_threads(flags).expect("valid flags");
        assert_eq!(threads(&["--max-speed"]), Some(1));
        assert_eq!(threads(&["--max-speed", "--threads", "3"]), Some(3));
        assert_eq!(threads(&["--speed", "2"]), None);
        assert_eq!(threads(&["--threads", "1"]), Some(1));
        let error = replay_threads(&["--threads", "0"]).expect_err("0 threads refused");
        assert!(error.to_string().contains("--threads"), "{error}");
    }

    #[test]
    fn one_worker_is_the_calling_thread_and_more_are_a_pool_of_that_size() {
        let one = runtime(Some(1)).expect("runtime");
        assert_eq!(one.handle().runtime_flavor(), RuntimeFlavor::CurrentThread);
        let caller = std::thread::current().id();
        let ran_on = one.block_on(async {
            tokio::spawn(async { std::thread::current().id() })
                .await
                .expect("task")
        });
        assert_eq!(ran_on, caller);

        let three = runtime(Some(3)).expect("runtime");
        assert_eq!(three.handle().runtime_flavor(), RuntimeFlavor::MultiThread);
        assert_eq!(three.metrics().num_workers(), 3);
        let per_core = runtime(None).expect("runtime");
        assert_eq!(
            per_core.handle().runtime_flavor(),
            RuntimeFlavor::MultiThread
        );
    }
}
