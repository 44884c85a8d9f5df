//! The shell: a REPL, `-c` and `-f` as datafusion-cli's, with the CLIP functions,
//! image tables and `clip.*` settings registered, and `--param` filling the
//! placeholders of the statements first.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clip_sql::sql_params;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_cli::catalog::DynamicObjectStoreCatalog;
use datafusion_cli::object_storage::instrumented::InstrumentedObjectStoreRegistry;
use datafusion_cli::print_format::PrintFormat;
use datafusion_cli::print_options::{MaxRows, PrintOptions};

#[cfg(feature = "ballista")]
use super::cluster;
use super::repl;
use clip_sql::session_options::base_options;
use clip_sql::sql_runner::print_script;

/// The shell's flags: what runs (`-c`, `-f`, else the REPL), how results
/// print, and where (in this process or on a cluster).
#[derive(Debug, clap::Args)]
pub(crate) struct ShellArgs {
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

/// The interactive/-f/-c session: in this process, or a client of a
/// Ballista cluster.
#[cfg_attr(not(feature = "ballista"), allow(unused_variables))]
async fn session(
    args: &ShellArgs,
    config: SessionConfig,
    runtime_env: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
) -> Result<SessionContext> {
    #[cfg(feature = "ballista")]
    if let Some(target) = &args.ballista {
        return cluster::cluster_context(target, config, runtime_env).await;
    }
    Ok(SessionContext::new_with_config_rt(config, runtime_env))
}

pub(crate) async fn run(args: ShellArgs) -> Result<()> {
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
        datafusion_clip::spawn_progress_reporter(Duration::from_millis(250));
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
        return repl::run_repl(&ctx, &mut print_options)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)));
    }
    #[cfg(feature = "ballista")]
    if args.ballista.is_some() {
        cluster::cancel_jobs_on_interrupt()?;
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
    sql_params::check_all_used(&params, &used)
        .map_err(|e| DataFusionError::Configuration(e.to_string()))?;

    let outcome = async {
        for (file, script) in scripts {
            // A file runs as one script that stops at its first failing
            // statement, so a broken benchmark exits non-zero instead of
            // printing an error and carrying on (datafusion-cli's `-f`).
            print_script(&ctx, &script, &print_options)
                .await
                .map_err(|e| DataFusionError::Execution(format!("{file}: {e}")))?;
        }
        for command in commands {
            print_script(&ctx, &command, &print_options).await?;
        }
        Ok(())
    }
    .await;
    // A statement whose job Ctrl-C cancelled fails; the interrupt, not
    // that failure, ends the process.
    #[cfg(feature = "ballista")]
    cluster::wait_if_interrupted().await;
    outcome
}
