//! `clip-sql suite`: its command line, turned into [`SuiteOptions`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use clip_sql::suite::{
    DEFAULT_MODELS, ExistingResults, SuiteOptions, SuiteSessions, run_suite as run,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionConfig;

#[cfg(feature = "ballista")]
use super::cluster;
use clip_sql::session_options::base_options;

/// Run the benchmark files for several models and write the article's report.
#[derive(Debug, Args)]
#[command(
    long_about = "Runs sql/benchmarks/<dataset>.sql for every model and dataset, saves every \
        prediction as Parquet, then runs sql/benchmarks/report.sql over them: accuracy by model \
        and dataset, Country211 by region, Rendered SST2 by class, one template vs the \
        templates ensembled, a weighted multi-model ensemble. Also writes CLIP_benchmark JSON \
        results, charts (SVG, PNG) and the whole report on one page (report.html, report.md).\n\n\
        Example: clip-sql suite --models RN50,ViT-B/32 --datasets cifar10,country211 --limit 1000"
)]
pub struct SuiteArgs {
    /// Models, comma-separated: names (RN50, ViT-B/32, ...), local
    /// directories or hf:org/repo; `label=source` names one in the results
    /// (tables, charts, file names), e.g. ours=/models/finetuned.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_MODELS.map(String::from))]
    models: Vec<String>,

    /// Datasets, comma-separated (sql/benchmarks/datasets.csv); default:
    /// every one with a public source or a --data.
    #[arg(long, value_delimiter = ',')]
    datasets: Option<Vec<String>>,

    /// At most this many images per model and dataset (a quick run).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,

    /// Where a dataset's shards are, e.g. --data food101=/mnt/food101/
    /// (repeatable).
    #[arg(long, value_name = "DATASET=LOCATION", value_parser = parse_pair)]
    data: Vec<(String, String)>,

    /// The ensemble's members and weights; default
    /// ViT-L/14=0.4,ViT-B/32=0.3,RN50=0.3 (the article's).
    #[arg(long, value_name = "MODEL=WEIGHT,...")]
    ensemble: Option<String>,

    /// A folder holding `clip-sql bench`'s efficiency.csv: the report
    /// shows latency, images/s and memory next to accuracy.
    #[arg(long, value_name = "DIR")]
    efficiency: Option<PathBuf>,

    /// Output directory.
    #[arg(long, default_value = "results")]
    out: PathBuf,

    /// The benchmark files, datasets.csv and report.sql.
    #[arg(long, default_value = "sql/benchmarks")]
    benchmarks: PathBuf,

    /// Class names, templates, regions and published figures.
    #[arg(long, default_value = "sql/data")]
    sqldata: PathBuf,

    /// Keep the predictions already in --out and run only what is missing.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,

    /// Run everything again, replacing the results in --out.
    #[arg(long)]
    overwrite: bool,

    /// A setting for every run, e.g. --set clip.batch_size=64 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair)]
    pub settings: Vec<(String, String)>,

    /// No progress line on the terminal.
    #[arg(short, long)]
    pub quiet: bool,

    /// Run the benchmark files on a Ballista cluster: df://HOST[:PORT], or
    /// `standalone` (in this process). Predictions and the report are
    /// written here.
    #[cfg(feature = "ballista")]
    #[arg(long, value_name = "df://HOST:PORT")]
    pub ballista: Option<String>,
}

pub(crate) fn parse_pair(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected name=value, got '{text}'"))?;
    if name.trim().is_empty() {
        return Err(format!("expected name=value, got '{text}'"));
    }
    Ok((name.trim().to_string(), value.trim().to_string()))
}

impl SuiteArgs {
    pub fn options(&self) -> Result<SuiteOptions> {
        let mut data = BTreeMap::new();
        for (dataset, location) in &self.data {
            if data.insert(dataset.clone(), location.clone()).is_some() {
                return Err(DataFusionError::Configuration(format!(
                    "--data {dataset}=... is given twice"
                )));
            }
        }
        let mut models = Vec::new();
        let mut sources = BTreeMap::new();
        for entry in self
            .models
            .iter()
            .map(|m| m.trim())
            .filter(|m| !m.is_empty())
        {
            let model = match entry.split_once('=') {
                Some((label, source)) => {
                    let (label, source) = (label.trim(), source.trim());
                    if label.is_empty() || source.is_empty() {
                        return Err(DataFusionError::Configuration(format!(
                            "--models {entry}: write label=source, both non-empty"
                        )));
                    }
                    sources.insert(label.to_string(), source.to_string());
                    label.to_string()
                }
                None => entry.to_string(),
            };
            if models.contains(&model) {
                return Err(DataFusionError::Configuration(format!(
                    "--models names {model} twice"
                )));
            }
            models.push(model);
        }
        Ok(SuiteOptions {
            models,
            sources,
            datasets: self.datasets.clone(),
            limit: self.limit,
            data,
            ensemble: self.ensemble.clone(),
            efficiency: self.efficiency.clone(),
            out: self.out.clone(),
            benchmarks: self.benchmarks.clone(),
            sqldata: self.sqldata.clone(),
            existing: if self.resume {
                ExistingResults::Resume
            } else if self.overwrite {
                ExistingResults::Overwrite
            } else {
                ExistingResults::Refuse
            },
        })
    }
}

/// Run the suite in this process, or its benchmark files on a cluster.
pub(crate) async fn run_suite(args: SuiteArgs) -> Result<()> {
    let suite = args.options()?;
    let mut options = base_options()?;
    for (key, value) in &args.settings {
        options.set(key, value)?;
    }
    let config = SessionConfig::from(options);
    let runtime_env = RuntimeEnvBuilder::new().build_arc()?;
    if !args.quiet && std::io::stderr().is_terminal() {
        datafusion_clip::spawn_progress_reporter(Duration::from_millis(250));
    }
    #[allow(unused_mut)]
    let mut sessions = SuiteSessions::local(config.clone(), runtime_env.clone());
    #[cfg(feature = "ballista")]
    if let Some(target) = args.ballista.clone() {
        cluster::cancel_jobs_on_interrupt()?;
        // A fresh client session per run, on the cluster; the report still
        // reads this machine's Parquet files here.
        sessions.benchmark = Arc::new(move || {
            let (target, config, runtime_env) =
                (target.clone(), config.clone(), runtime_env.clone());
            Box::pin(async move { cluster::cluster_context(&target, config, runtime_env).await })
        });
    }
    let outcome = run(&suite, &sessions).await;
    // A run whose job Ctrl-C cancelled fails; the interrupt, not that
    // failure, ends the process.
    #[cfg(feature = "ballista")]
    cluster::wait_if_interrupted().await;
    outcome.map(|_| ())
}
