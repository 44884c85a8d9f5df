//! `clip-sql`: datafusion-cli with the CLIP functions, image tables and
//! `clip.*` settings registered. REPL, `-c`, `-f` and the print formats are
//! datafusion-cli's own.

// Data paths never panic: a bad row is a NULL or an error naming it. Tests
// may unwrap; code that ships may not.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod bench_command;
#[cfg(feature = "ballista")]
mod cluster_command;
mod suite_command;

use clap::{Parser, Subcommand};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_cli::catalog::DynamicObjectStoreCatalog;
use datafusion_cli::exec;
use datafusion_cli::object_storage::instrumented::InstrumentedObjectStoreRegistry;
use datafusion_cli::print_format::PrintFormat;
use datafusion_cli::print_options::{MaxRows, PrintOptions};
use datafusion_clip::{ClipOptions, sql_params};

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

    /// Execute the given SQL statement(s), then exit.
    #[arg(short = 'c', long, num_args = 0.., value_parser = parse_command)]
    command: Vec<String>,

    /// Execute the statements of the given file(s), then exit.
    #[arg(short, long, num_args = 0.., value_parser = parse_file)]
    file: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = PrintFormat::Automatic)]
    format: PrintFormat,

    /// Print only results: no timing lines, no progress.
    #[arg(short, long)]
    quiet: bool,

    /// Rows to show for the table format ("inf" for all).
    #[arg(long, default_value = "40")]
    maxrows: MaxRows,

    /// Syntax highlighting in the shell.
    #[arg(long)]
    color: bool,

    /// A value for the `${name}` (or `${name:-default}`) placeholders of the
    /// -f files and -c statements, e.g. --param data=/mnt/cifar (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = sql_params::parse_param)]
    params: Vec<(String, String)>,

    /// Run queries on a Ballista cluster: df://HOST[:PORT] (a `clip-sql
    /// scheduler`), or `standalone` for a scheduler and executor started in
    /// this process.
    #[cfg(feature = "ballista")]
    #[arg(long, value_name = "df://HOST:PORT")]
    ballista: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the benchmark files for several models; write predictions,
    /// the seed's tables, CLIP_benchmark JSON results and charts.
    Suite(suite_command::SuiteArgs),
    /// Measure the efficiency table (batch-1 latency, images/s, prompts/s,
    /// peak memory) and the end-to-end images/s of a SQL query over images.
    Bench(bench_command::BenchArgs),
    /// Run a Ballista scheduler that knows the CLIP functions and tables.
    #[cfg(feature = "ballista")]
    Scheduler(cluster_command::SchedulerArgs),
    /// Run a Ballista executor with the CLIP functions on its own device.
    #[cfg(feature = "ballista")]
    Executor(cluster_command::ExecutorArgs),
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
        Some(Command::Suite(suite)) => runtime.block_on(run_suite(suite)),
        Some(Command::Bench(bench)) => {
            runtime.block_on(async { bench_command::run_bench(bench, base_options()?).await })
        }
        #[cfg(feature = "ballista")]
        Some(Command::Scheduler(scheduler)) => {
            runtime.block_on(cluster_command::scheduler(scheduler))
        }
        #[cfg(feature = "ballista")]
        Some(Command::Executor(executor)) => runtime.block_on(cluster_command::executor(executor)),
        None => runtime.block_on(run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The settings every session starts from: DataFusion's from the
/// environment, plus `clip.*`.
fn base_options() -> Result<ConfigOptions> {
    let mut options = ConfigOptions::from_env()?;
    // As datafusion-cli: show NULL as NULL rather than as an empty cell.
    options.format.null = "NULL".to_string();
    options.extensions.insert(ClipOptions::default());
    Ok(options)
}

async fn run_suite(args: suite_command::SuiteArgs) -> Result<()> {
    let suite = args.options().map_err(DataFusionError::Configuration)?;
    let mut options = base_options()?;
    for (key, value) in &args.settings {
        options.set(key, value)?;
    }
    let config = SessionConfig::from(options);
    let runtime_env = RuntimeEnvBuilder::new().build_arc()?;
    if !args.quiet && std::io::stderr().is_terminal() {
        datafusion_clip::engine::progress::spawn_stderr_reporter(Duration::from_millis(250));
    }
    #[allow(unused_mut)]
    let mut sessions =
        datafusion_clip::suite::SuiteSessions::local(config.clone(), runtime_env.clone());
    #[cfg(feature = "ballista")]
    if let Some(target) = args.ballista.clone() {
        // A fresh client session per run, on the cluster; the report still
        // reads this machine's Parquet files here.
        sessions.benchmark = Arc::new(move || {
            let (target, config, runtime_env) =
                (target.clone(), config.clone(), runtime_env.clone());
            Box::pin(
                async move { cluster_command::cluster_context(&target, config, runtime_env).await },
            )
        });
    }
    datafusion_clip::suite::run_suite(&suite, &sessions).await?;
    Ok(())
}

/// The interactive/-f/-c session: in this process, or a client of a
/// Ballista cluster.
#[cfg_attr(not(feature = "ballista"), allow(unused_variables))]
async fn session(
    args: &Args,
    config: SessionConfig,
    runtime_env: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
) -> Result<SessionContext> {
    #[cfg(feature = "ballista")]
    if let Some(target) = &args.ballista {
        return cluster_command::cluster_context(target, config, runtime_env).await;
    }
    Ok(SessionContext::new_with_config_rt(config, runtime_env))
}

async fn run(args: Args) -> Result<()> {
    let config = SessionConfig::from(base_options()?).with_information_schema(true);

    // datafusion-cli's print options report object-store activity through
    // this registry; it is also where stores for table locations go.
    let registry = Arc::new(InstrumentedObjectStoreRegistry::new());
    let runtime_env = RuntimeEnvBuilder::new()
        .with_object_store_registry(registry.clone())
        .build_arc()?;
    let ctx = session(&args, config, runtime_env)
        .await?
        .enable_url_table();
    ctx.register_catalog_list(Arc::new(DynamicObjectStoreCatalog::new(
        ctx.state().catalog_list().clone(),
        ctx.state_weak_ref(),
    )));
    datafusion_clip::register(&ctx)?;

    if !args.quiet && std::io::stderr().is_terminal() {
        datafusion_clip::engine::progress::spawn_stderr_reporter(Duration::from_millis(250));
    }

    let mut print_options = PrintOptions {
        format: args.format,
        quiet: args.quiet,
        maxrows: args.maxrows,
        color: args.color,
        instrumented_registry: registry,
    };

    if args.command.is_empty() && args.file.is_empty() {
        if !args.params.is_empty() {
            return Err(DataFusionError::Configuration(
                "--param fills placeholders of -f files and -c statements; the interactive \
                 shell takes none"
                    .to_string(),
            ));
        }
        // datafusion-cli's REPL drops the query on Ctrl-C, but only once the
        // CLIP call in progress returns; make that call stop at its next
        // forward pass. (With -f or -c, Ctrl-C ends the process as usual.)
        tokio::spawn(async {
            while tokio::signal::ctrl_c().await.is_ok() {
                datafusion_clip::engine::cancel_running_work();
            }
        });
        return exec::exec_from_repl(&ctx, &mut print_options)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)));
    }
    // Every placeholder is filled before anything runs: a missing or
    // misspelt parameter fails at once, not after an hour of benchmark.
    let params: BTreeMap<String, String> = args.params.into_iter().collect();
    let mut used = BTreeSet::new();
    let fill = |text: &str, used: &mut BTreeSet<String>, origin: &str| {
        sql_params::substitute(text, &params, used)
            .map_err(|e| DataFusionError::Configuration(format!("{origin}: {e}")))
    };
    let mut scripts = Vec::new();
    for file in &args.file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| DataFusionError::Execution(format!("cannot read {file}: {e}")))?;
        let script: String = text
            .lines()
            .filter(|line| !line.starts_with("#!"))
            .collect::<Vec<_>>()
            .join("\n");
        scripts.push((file.clone(), fill(&script, &mut used, file)?));
    }
    let commands = args
        .command
        .iter()
        .map(|c| fill(c, &mut used, "-c"))
        .collect::<Result<Vec<String>>>()?;
    sql_params::check_all_used(&params, &used).map_err(DataFusionError::Configuration)?;

    for (file, script) in scripts {
        // A file runs as one script that stops at its first failing
        // statement, so a broken benchmark exits non-zero instead of
        // printing an error and carrying on (datafusion-cli's `-f`).
        exec::exec_from_commands(&ctx, vec![script], &print_options)
            .await
            .map_err(|e| DataFusionError::Execution(format!("{file}: {e}")))?;
    }
    if !commands.is_empty() {
        exec::exec_from_commands(&ctx, commands, &print_options).await?;
    }
    Ok(())
}
