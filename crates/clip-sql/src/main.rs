//! `clip-sql`: datafusion-cli with the CLIP functions, image tables and
//! `clip.*` settings registered. REPL, `-c`, `-f` and the print formats are
//! datafusion-cli's own.

// Data paths never panic: a bad row is a NULL or an error naming it. Tests
// may unwrap; code that ships may not.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::io::Write;
use std::process::ExitCode;

mod commands;

use clap::{Parser, Subcommand};
use clip_sql::session_options::base_options;

#[cfg(feature = "ballista")]
use commands::cluster;
use commands::{bench, report, shell, suite};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "SQL over image tables with CLIP functions (DataFusion + candle)",
    long_about = "SQL over image tables with CLIP functions.\n\n\
        Without -c or -f, starts an interactive shell.\n\
        Example: clip-sql -f sql/benchmarks/cifar10.sql --param model=RN50\n\
        On a Ballista cluster: clip-sql --ballista df://scheduler:50050 -f ...",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    subcommand: Option<Command>,

    /// The shell's flags (no subcommand).
    #[command(flatten)]
    shell: shell::ShellArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the benchmark files for several models; write predictions,
    /// the tables of the article's evaluation (CLIP over 15 datasets; see
    /// sql/README.md), CLIP_benchmark JSON results and charts.
    Suite(suite::SuiteArgs),
    /// Rebuild the report (tables, charts, CLIP_benchmark JSON,
    /// report.html) from a suite's saved predictions, e.g. with other
    /// ensemble weights.
    Report(report::ReportArgs),
    /// Measure the efficiency table (batch-1 latency, images/s, prompts/s,
    /// peak memory) and the end-to-end images/s of a SQL query over images.
    Bench(bench::BenchArgs),
    /// Run a Ballista scheduler that knows the CLIP functions and tables.
    #[cfg(feature = "ballista")]
    Scheduler(cluster::SchedulerArgs),
    /// Run a Ballista executor with the CLIP functions on its own device.
    #[cfg(feature = "ballista")]
    Executor(cluster::ExecutorArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.subcommand {
        Some(Command::Suite(args)) => runtime.block_on(suite::run_suite(args)),
        Some(Command::Report(args)) => runtime.block_on(report::run_report(args)),
        Some(Command::Bench(args)) => {
            runtime.block_on(async { bench::run_bench(args, base_options()?).await })
        }
        #[cfg(feature = "ballista")]
        Some(Command::Scheduler(args)) => runtime.block_on(cluster::scheduler(args)),
        #[cfg(feature = "ballista")]
        Some(Command::Executor(args)) => runtime.block_on(cluster::executor(args)),
        None => runtime.block_on(shell::run(args.shell)),
    };
    // Work a dropped statement left behind (a read still blocked on its
    // file or network after Ctrl-C) must not keep the process from exiting,
    // as dropping the runtime would by waiting for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The library's warnings on stderr as `warning: ...` (an unreadable file
/// skipped, a GPU that could not be opened, a job that could not be
/// cancelled); `RUST_LOG` chooses other levels and crates, as usual.
fn init_logging() {
    let default = "datafusion_clip=warn,clip_model=warn,clip_sql=warn";
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(|out, record| {
            let level = record.level().as_str().to_lowercase();
            let level = if level == "warn" { "warning" } else { &level };
            writeln!(out, "{level}: {}", record.args())
        })
        .init();
}
