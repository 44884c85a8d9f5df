//! `clip-sql`: datafusion-cli with the CLIP functions, image tables and
//! `clip.*` settings registered. REPL, `-c`, `-f` and the print formats are
//! datafusion-cli's own.

// Data paths never panic: a bad row is a NULL or an error naming it. Tests
// may unwrap; code that ships may not.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

mod commands;

use clap::{Parser, Subcommand};
use clip_sql::sql_params;
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion_cli::print_format::PrintFormat;
use datafusion_cli::print_options::MaxRows;
use datafusion_clip::ClipOptions;

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
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) subcommand: Option<Command>,

    /// Execute the given SQL statement(s), then exit.
    #[arg(short = 'c', long, num_args = 0.., value_parser = parse_command)]
    pub(crate) command: Vec<String>,

    /// Execute the statements of the given file(s), then exit.
    #[arg(short, long, num_args = 0.., value_parser = parse_file)]
    pub(crate) file: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = PrintFormat::Automatic)]
    pub(crate) format: PrintFormat,

    /// Print only results: no timing lines, no progress.
    #[arg(short, long)]
    pub(crate) quiet: bool,

    /// Rows to show for the table format ("inf" for all).
    #[arg(long, default_value = "40")]
    pub(crate) maxrows: MaxRows,

    /// Syntax highlighting in the shell.
    #[arg(long)]
    pub(crate) color: bool,

    /// A value for the `${name}` (or `${name:-default}`) placeholders of the
    /// -f files and -c statements, e.g. --param data=/mnt/cifar (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = sql_params::parse_param)]
    pub(crate) params: Vec<(String, String)>,

    /// Run queries on a Ballista cluster: df://HOST[:PORT] (a `clip-sql
    /// scheduler`), or `standalone` for a scheduler and executor started in
    /// this process.
    #[cfg(feature = "ballista")]
    #[arg(long, value_name = "df://HOST:PORT")]
    pub(crate) ballista: Option<String>,
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

fn parse_command(command: &str) -> std::result::Result<String, String> {
    if command.trim().is_empty() {
        Err("-c needs a non-empty SQL statement".to_string())
    } else {
        Ok(command.to_string())
    }
}

fn parse_file(file: &str) -> std::result::Result<String, String> {
    if Path::new(file).is_file() {
        Ok(file.to_string())
    } else {
        Err(format!("no such SQL file: '{file}'"))
    }
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
        None => runtime.block_on(shell::run(args)),
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

/// The settings every session starts from: DataFusion's from the
/// environment, plus `clip.*`.
pub(crate) fn base_options() -> Result<ConfigOptions> {
    let mut options = ConfigOptions::from_env()?;
    // As datafusion-cli: show NULL as NULL rather than as an empty cell.
    options.format.null = "NULL".to_string();
    options.extensions.insert(ClipOptions::default());
    Ok(options)
}
