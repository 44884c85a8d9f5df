//! `clip-sql report`: the report rebuilt from a results directory.

use std::path::PathBuf;

use clap::Args;
use clip_sql::catalogue::read_catalogue;
use clip_sql::report::{ReportInputs, build_report, saved_models};
use clip_sql::suite::{context_factory, read_model_sources, read_settings};
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;

use clip_sql::session_options::base_options;

/// Rebuild every table, chart, CLIP_benchmark JSON file and report.html
/// from a suite's saved predictions.
#[derive(Debug, Args)]
#[command(
    long_about = "Runs sql/benchmarks/report.sql over the predictions a `clip-sql suite` saved \
        and rebuilds everything made from them: tables/*.csv, the accuracy matrix, \
        clip_benchmark/*.json, charts/ and report.html / report.md. Nothing is encoded again, \
        so re-weighing the ensemble takes seconds.\n\n\
        Example: clip-sql report --results results --ensemble 'ViT-L/14=0.5,RN50=0.5'"
)]
pub struct ReportArgs {
    /// The results directory a suite wrote (`--out`).
    #[arg(long, default_value = "results")]
    results: PathBuf,

    /// The ensemble's members and weights; default
    /// ViT-L/14=0.4,ViT-B/32=0.3,RN50=0.3 (the article's).
    #[arg(long, value_name = "MODEL=WEIGHT,...")]
    ensemble: Option<String>,

    /// A folder holding `clip-sql bench`'s efficiency.csv: latency,
    /// images/s and memory next to accuracy.
    #[arg(long, value_name = "DIR")]
    efficiency: Option<PathBuf>,

    /// The benchmark files' folder: datasets.csv, report.sql.
    #[arg(long, default_value = "sql/benchmarks")]
    benchmarks: PathBuf,

    /// Class names, templates, regions and published figures.
    #[arg(long, default_value = "sql/data")]
    sqldata: PathBuf,
}

pub(crate) async fn run_report(args: ReportArgs) -> Result<()> {
    let config = SessionConfig::from(base_options()?);
    let runtime_env = RuntimeEnvBuilder::new().build_arc()?;
    let ctx = context_factory(config, runtime_env)().await?;
    let inputs = ReportInputs {
        models: saved_models(&ctx, &args.results).await?,
        catalogue: read_catalogue(&args.benchmarks).await?,
        settings: read_settings(&args.results)?,
        sources: read_model_sources(&args.results)?,
        results: args.results,
        benchmarks: args.benchmarks,
        sqldata: args.sqldata,
        ensemble: args.ensemble,
        efficiency: args.efficiency,
    };
    let report = build_report(&inputs, &ctx).await?;
    print!("{}", report.tables_text);
    eprintln!(
        "Wrote {}: tables/, {} CLIP_benchmark results, {} charts, report.html, report.md",
        inputs.results.display(),
        report.json_files.len(),
        report.charts.len()
    );
    Ok(())
}
