//! `clip-sql suite`: the article's whole evaluation — every benchmark file
//! for every model — and its report.
//!
//! For each model and dataset it runs `sql/benchmarks/<dataset>.sql` (with
//! `model`, `limit` and `data` filled in) and saves what the file builds
//! as Parquet: a classification file's `<dataset>_predictions` (and its
//! class probabilities), a retrieval file's `<dataset>_image_retrieval` and
//! `<dataset>_text_retrieval`. Then `crate::report` builds the report from
//! everything saved:
//!
//! ```text
//! <out>/predictions/<dataset>__<model>.parquet      every prediction
//! <out>/probabilities/<dataset>__<model>.parquet    class probabilities (ensembles)
//! <out>/image_retrieval/, text_retrieval/           retrieval runs' top 10s
//! <out>/tables/, clip_benchmark/, charts/, report.html, report.md
//! <out>/runs.csv                                    what ran, how long, what failed
//! <out>/settings.json, model_sources.json           what was asked, for the report
//! ```
//!
//! One failing (model, dataset) run does not stop the others; the suite
//! reports it and fails at the end. Models and datasets are checked before
//! anything runs.

pub mod options;
pub mod run_conditions;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::common::{DataFusionError, Result, exec_err, plan_err};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::parquet::arrow::AsyncArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{SessionConfig, SessionContext, lit};
use futures::StreamExt;
use futures::future::BoxFuture;

use crate::catalogue::{self, Dataset};
use crate::files::io_error;
use crate::report::{ReportInputs, build_report};
use crate::sql_params;
use crate::sql_runner::{run_statement, split_script};
use options::limit_text;
pub use options::{DEFAULT_MODELS, ExistingResults, SuiteOptions, model_file_name};
use run_conditions::{RUNS_FOLDER, first_difference, read_record, remove_record, write_record};

/// One (model, dataset) run.
#[derive(Debug, Clone)]
pub struct Run {
    pub model: String,
    pub dataset: String,
    pub n: Option<u64>,
    pub seconds: f64,
    pub outcome: RunOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Done,
    /// Predictions from an earlier suite were kept (`--resume`).
    Kept,
    Failed(String),
}

/// What the suite wrote.
#[derive(Debug)]
pub struct SuiteReport {
    pub runs: Vec<Run>,
    /// Everything printed to stdout: the report's tables.
    pub tables_text: String,
    pub json_files: Vec<PathBuf>,
    pub charts: Vec<PathBuf>,
    /// report.html and report.md.
    pub pages: Vec<PathBuf>,
}

/// Builds a fresh session: the caller's settings and runtime (object
/// stores), with the CLIP functions registered.
pub type ContextFactory = dyn Fn() -> BoxFuture<'static, Result<SessionContext>> + Send + Sync;

/// A context factory for sessions that run in this process.
pub fn context_factory(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> Arc<ContextFactory> {
    Arc::new(move || {
        let ctx = SessionContext::new_with_config_rt(config.clone(), runtime.clone());
        Box::pin(async move {
            datafusion_clip::register(&ctx)?;
            Ok(ctx)
        })
    })
}

/// Where the suite's SQL runs.
#[derive(Clone)]
pub struct SuiteSessions {
    /// A fresh session for each (dataset, model) run: in this process, or
    /// on a Ballista cluster.
    pub benchmark: Arc<ContextFactory>,
    /// The report, which reads the Parquet files this process wrote: always
    /// in this process.
    pub report: Arc<ContextFactory>,
}

impl SuiteSessions {
    /// Everything in this process.
    pub fn local(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> Self {
        let factory = context_factory(config, runtime);
        Self {
            benchmark: Arc::clone(&factory),
            report: factory,
        }
    }
}

struct Plan {
    datasets: Vec<Dataset>,
    skipped: Vec<String>,
    catalogue: Vec<Dataset>,
}

async fn plan(options: &SuiteOptions) -> Result<Plan> {
    if options.models.is_empty() {
        return plan_err!("--models names no model");
    }
    // Read by the report, after every run: a wrong folder is found now.
    if let Some(dir) = &options.efficiency {
        crate::report::check_efficiency_dir(dir)?;
    }
    let mut seen = BTreeMap::new();
    for model in &options.models {
        if let Some(other) = seen.insert(model_file_name(model), model) {
            return plan_err!(
                "models '{other}' and '{model}' would share the result files of '{}'",
                model_file_name(model)
            );
        }
    }
    let catalogue = catalogue::read_catalogue(&options.benchmarks).await?;
    let known = || {
        catalogue
            .iter()
            .map(|d| d.slug.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let find = |slug: &str| catalogue.iter().find(|d| d.slug == slug);
    for slug in options.data.keys() {
        if find(slug).is_none() {
            return plan_err!(
                "--data names an unknown dataset '{slug}' (known: {})",
                known()
            );
        }
    }
    let mut datasets = Vec::new();
    let mut skipped = Vec::new();
    match &options.datasets {
        Some(wanted) => {
            for slug in wanted {
                let Some(dataset) = find(slug) else {
                    return plan_err!("unknown dataset '{slug}' (known: {})", known());
                };
                if !dataset.has_default_data && !options.data.contains_key(slug) {
                    return plan_err!(
                        "{slug} has no public source: pass --data {slug}=<shards> \
                         (sql/benchmarks/{slug}.sql says how to make them)"
                    );
                }
                if !datasets.contains(dataset) {
                    datasets.push(dataset.clone());
                }
            }
        }
        None => {
            // The article's evaluation: classification. Retrieval datasets
            // run when --datasets names them or --data gives their shards.
            for dataset in &catalogue {
                if dataset.is_retrieval() {
                    if options.data.contains_key(&dataset.slug) {
                        datasets.push(dataset.clone());
                    }
                } else if dataset.has_default_data || options.data.contains_key(&dataset.slug) {
                    datasets.push(dataset.clone());
                } else {
                    skipped.push(dataset.slug.clone());
                }
            }
        }
    }
    for slug in options.data.keys() {
        if !datasets.iter().any(|d| &d.slug == slug) {
            return plan_err!("--data {slug}=... is given but {slug} is not in --datasets");
        }
    }
    for dataset in &datasets {
        let file = options.benchmarks.join(format!("{}.sql", dataset.slug));
        if !file.is_file() {
            return plan_err!("no benchmark file {}", file.display());
        }
    }
    Ok(Plan {
        datasets,
        skipped,
        catalogue,
    })
}

/// The folders a run saves into: `predictions/` and `probabilities/` for
/// classification, `image_retrieval/` and `text_retrieval/` for retrieval.
pub const RESULT_FOLDERS: [&str; 4] = [
    "predictions",
    "probabilities",
    "image_retrieval",
    "text_retrieval",
];

/// The Parquet files a (dataset, model) run saves, in `folder`.
fn result_file(out: &Path, folder: &str, dataset: &str, model: &str) -> PathBuf {
    out.join(folder)
        .join(format!("{dataset}__{}.parquet", model_file_name(model)))
}

/// Every file a run of `dataset` saves (the first is the one whose
/// presence means the run has results).
fn result_files(out: &Path, dataset: &Dataset, model: &str) -> Vec<PathBuf> {
    let folders = if dataset.is_retrieval() {
        &RESULT_FOLDERS[2..]
    } else {
        &RESULT_FOLDERS[..2]
    };
    folders
        .iter()
        .map(|folder| result_file(out, folder, &dataset.slug, model))
        .collect()
}

/// Run the suite. Progress goes to stderr; the report's tables are printed
/// to stdout and returned.
pub async fn run_suite(options: &SuiteOptions, sessions: &SuiteSessions) -> Result<SuiteReport> {
    let plan = plan(options).await?;
    let out = &options.out;
    if options.existing == ExistingResults::Refuse {
        let existing: Vec<String> = plan
            .datasets
            .iter()
            .flat_map(|d| options.models.iter().map(move |m| (d, m)))
            .map(|(d, m)| result_files(out, d, m).swap_remove(0))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return plan_err!(
                "{} already holds results ({}{}): pass --resume to keep them and run the rest, \
                 --overwrite to run everything again, or choose another --out",
                out.display(),
                existing[0],
                if existing.len() > 1 {
                    format!(" and {} more", existing.len() - 1)
                } else {
                    String::new()
                }
            );
        }
    }
    let device_settings = clip_settings(sessions, &["clip.device", "clip.dtype"]).await?;
    if options.existing == ExistingResults::Resume {
        refuse_runs_made_otherwise(options, &plan, &device_settings)?;
    }
    for dir in RESULT_FOLDERS
        .iter()
        .chain(&["tables", "clip_benchmark", "charts", RUNS_FOLDER])
    {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    }
    if !plan.skipped.is_empty() {
        eprintln!(
            "Skipping {} (no public source; pass --data <dataset>=<shards>)",
            plan.skipped.join(", ")
        );
    }

    write_settings(options, &plan, sessions).await?;

    let total = plan.datasets.len() * options.models.len();
    let mut runs = Vec::new();
    for model in &options.models {
        for dataset in &plan.datasets {
            let step = runs.len() + 1;
            let files = result_files(out, dataset, model);
            if options.existing == ExistingResults::Resume && files.iter().all(|f| f.exists()) {
                eprintln!(
                    "[{step}/{total}] {} × {model}: kept from before",
                    dataset.slug
                );
                runs.push(Run {
                    model: model.clone(),
                    dataset: dataset.slug.clone(),
                    n: None,
                    seconds: 0.0,
                    outcome: RunOutcome::Kept,
                });
                continue;
            }
            // Results of an earlier suite for this run go first: if the
            // run fails, the report must not show them as this suite's.
            for stale in files {
                if stale.exists() {
                    std::fs::remove_file(&stale).map_err(|e| io_error(&stale, e))?;
                }
            }
            remove_record(out, &dataset.slug, model)?;
            let conditions =
                run_conditions::run_conditions(options, dataset, model, &device_settings);
            eprintln!("[{step}/{total}] {} × {model} ...", dataset.slug);
            let started = Instant::now();
            let result = run_benchmark(options, sessions.benchmark.as_ref(), dataset, model).await;
            let seconds = started.elapsed().as_secs_f64();
            let run = match result {
                Ok((n, figure)) => {
                    let what = if dataset.is_retrieval() {
                        "image retrieval recall@1"
                    } else {
                        "acc1"
                    };
                    eprintln!(
                        "[{step}/{total}] {} × {model}: {n} images, {what} {figure:.2}% in {seconds:.1} s",
                        dataset.slug
                    );
                    write_record(out, &dataset.slug, model, &conditions)?;
                    Run {
                        model: model.clone(),
                        dataset: dataset.slug.clone(),
                        n: Some(n),
                        seconds,
                        outcome: RunOutcome::Done,
                    }
                }
                Err(e) => {
                    eprintln!("[{step}/{total}] {} × {model}: FAILED: {e}", dataset.slug);
                    Run {
                        model: model.clone(),
                        dataset: dataset.slug.clone(),
                        n: None,
                        seconds,
                        outcome: RunOutcome::Failed(e.to_string()),
                    }
                }
            };
            runs.push(run);
        }
    }
    write_runs(out, &runs)?;
    if !runs
        .iter()
        .any(|r| matches!(r.outcome, RunOutcome::Done | RunOutcome::Kept))
    {
        return exec_err!(
            "every run failed; {} says why",
            out.join("runs.csv").display()
        );
    }

    let ctx = (sessions.report)().await?;
    let inputs = ReportInputs {
        results: out.clone(),
        benchmarks: options.benchmarks.clone(),
        sqldata: options.sqldata.clone(),
        ensemble: options.ensemble.clone(),
        efficiency: options.efficiency.clone(),
        models: options.models.clone(),
        sources: read_model_sources(out)?,
        catalogue: plan.catalogue.clone(),
        settings: read_settings(out)?,
    };
    let report = build_report(&inputs, &ctx).await?;
    print!("{}", report.tables_text);

    eprintln!(
        "Wrote {}: predictions/, probabilities/, tables/, {} CLIP_benchmark results, {} charts, \
         report.html, report.md, runs.csv",
        out.display(),
        report.json_files.len(),
        report.charts.len()
    );
    let failed: Vec<&Run> = runs
        .iter()
        .filter(|r| matches!(r.outcome, RunOutcome::Failed(_)))
        .collect();
    if !failed.is_empty() {
        let list = failed
            .iter()
            .map(|r| format!("{} × {}", r.dataset, r.model))
            .collect::<Vec<_>>()
            .join(", ");
        return exec_err!(
            "{} of {} runs failed ({list}); the report covers the others; {} says why",
            failed.len(),
            runs.len(),
            out.join("runs.csv").display()
        );
    }
    Ok(SuiteReport {
        runs,
        tables_text: report.tables_text,
        json_files: report.json_files,
        charts: report.charts,
        pages: report.pages,
    })
}

/// Run one benchmark file for one model; save its predictions. Returns the
/// number of images and acc1 (percent).
async fn run_benchmark(
    options: &SuiteOptions,
    context: &ContextFactory,
    dataset: &Dataset,
    model: &str,
) -> Result<(u64, f64)> {
    let path = options.benchmarks.join(format!("{}.sql", dataset.slug));
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    let mut params = BTreeMap::from([
        ("model".to_string(), options.source_of(model).to_string()),
        (
            "sqldata".to_string(),
            options.sqldata.to_string_lossy().into_owned(),
        ),
    ]);
    if let Some(limit) = options.limit {
        params.insert("limit".to_string(), limit.to_string());
    }
    if let Some(data) = options.data.get(&dataset.slug) {
        params.insert("data".to_string(), data.clone());
    }
    let script = sql_params::substitute(&text, &params, &mut BTreeSet::new())
        .map_err(|e| DataFusionError::Plan(format!("{}: {e}", path.display())))?;
    let ctx = context().await?;
    let last = if dataset.is_retrieval() {
        format!("{}_text_retrieval", dataset.slug)
    } else {
        format!("{}_predictions", dataset.slug)
    };
    let in_file =
        |e: DataFusionError| DataFusionError::Execution(format!("{}: {e}", path.display()));
    for statement in split_script(&ctx, &script).map_err(in_file)? {
        // The file's own summaries are recomputed by the report; run what
        // builds the tables it saves.
        if statement.is_query() {
            continue;
        }
        run_statement(&ctx, &statement).await.map_err(in_file)?;
        if statement.created_table().as_deref() == Some(last.as_str()) {
            break;
        }
    }
    if dataset.is_retrieval() {
        return save_retrieval(options, &ctx, &path, dataset, model).await;
    }

    let table = last;
    let mut predictions = ctx
        .table(table.as_str())
        .await
        .map_err(|_| DataFusionError::Plan(format!("{} made no table {table}", path.display())))?;
    if options.source_of(model) != model {
        // A labelled model: its results carry the label, not the path.
        predictions = predictions.with_column("model", lit(model))?;
    }
    let saved = predictions.clone().select_columns(&[
        "model",
        "dataset",
        "split",
        "key",
        "label",
        "label_index",
        "predicted",
        "predicted_label",
        "top5",
        "probability",
        "predicted_one_template",
    ])?;
    let files = result_files(&options.out, dataset, model);
    write_parquet(saved, &files[0]).await?;
    let probabilities =
        predictions
            .clone()
            .select_columns(&["model", "dataset", "key", "label_index", "probs"])?;
    write_parquet(probabilities, &files[1]).await?;

    let summary = ctx
        .sql(&format!(
            "SELECT count(*) AS n, \
                    100.0 * avg(CASE WHEN predicted = label_index THEN 1.0 ELSE 0.0 END) AS acc1 \
             FROM {table}"
        ))
        .await?
        .collect()
        .await?;
    let batch = summary
        .first()
        .ok_or_else(|| DataFusionError::Execution(format!("{table}: no summary row")))?;
    let n = batch
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    let acc1 = batch.column(1).as_primitive::<Float64Type>();
    let n = if n.is_empty() {
        0
    } else {
        n.value(0).max(0) as u64
    };
    let acc1 = if acc1.is_empty() || acc1.is_null(0) {
        0.0
    } else {
        acc1.value(0)
    };
    Ok((n, acc1))
}

/// Save a retrieval run's per-query tables (every caption's and every
/// image's top 10); returns the images and image retrieval recall@1
/// (percent).
async fn save_retrieval(
    options: &SuiteOptions,
    ctx: &SessionContext,
    path: &Path,
    dataset: &Dataset,
    model: &str,
) -> Result<(u64, f64)> {
    let files = result_files(&options.out, dataset, model);
    for (kind, file) in ["image_retrieval", "text_retrieval"].iter().zip(&files) {
        let table = format!("{}_{kind}", dataset.slug);
        let mut frame = ctx.table(table.as_str()).await.map_err(|_| {
            DataFusionError::Plan(format!("{} made no table {table}", path.display()))
        })?;
        if options.source_of(model) != model {
            frame = frame.with_column("model", lit(model))?;
        }
        write_parquet(frame, file).await?;
    }
    let images = collect_text(
        ctx,
        &format!("SELECT count(*) FROM {}_text_retrieval", dataset.slug),
    )
    .await?;
    let recall = collect_text(
        ctx,
        &format!(
            "SELECT 100.0 * avg(CASE WHEN array_position(top10_images, image_index) <= 1 \
                                THEN 1.0 ELSE 0.0 END) \
             FROM {}_image_retrieval",
            dataset.slug
        ),
    )
    .await?;
    Ok((images.parse().unwrap_or(0), recall.parse().unwrap_or(0.0)))
}

/// Write a frame as one Parquet file here, where `clip-sql` runs (on a
/// cluster the rows come back from the executors), atomically: a reader
/// (or `--resume`) never sees half a file.
async fn write_parquet(frame: datafusion::dataframe::DataFrame, path: &Path) -> Result<()> {
    let partial = path.with_extension("parquet.partial");
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let mut batches = frame.execute_stream().await?;
    let file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| io_error(&partial, e))?;
    // zstd level 3, as DataFusion's own Parquet writer defaults to.
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .build();
    let mut writer = AsyncArrowWriter::try_new(file, schema, Some(properties))?;
    while let Some(batch) = batches.next().await {
        writer.write(&batch?).await?;
    }
    writer.close().await?;
    std::fs::rename(&partial, path).map_err(|e| io_error(path, e))
}

fn write_runs(out: &Path, runs: &[Run]) -> Result<()> {
    let mut text = String::from("model,dataset,n,seconds,outcome,error\n");
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for run in runs {
        let (outcome, error) = match &run.outcome {
            RunOutcome::Done => ("done", String::new()),
            RunOutcome::Kept => ("kept", String::new()),
            RunOutcome::Failed(e) => ("failed", quote(e)),
        };
        let _ = writeln!(
            text,
            "{},{},{},{:.1},{outcome},{error}",
            quote(&run.model),
            run.dataset,
            run.n.map(|n| n.to_string()).unwrap_or_default(),
            run.seconds
        );
    }
    let path = out.join("runs.csv");
    std::fs::write(&path, text).map_err(|e| io_error(&path, e))
}

/// What a run was asked to do, for the report's "Run" table:
/// `<out>/settings.json`, pairs of (setting, value), so `clip-sql report`
/// shows them again later.
async fn write_settings(
    options: &SuiteOptions,
    plan: &Plan,
    sessions: &SuiteSessions,
) -> Result<()> {
    let ctx = (sessions.report)().await?;
    let now = collect_text(&ctx, "SELECT CAST(date_trunc('second', now()) AS VARCHAR)").await?;
    let mut settings = vec![("started (UTC)".to_string(), now)];
    settings.push((
        "datasets".to_string(),
        plan.datasets
            .iter()
            .map(|d| d.slug.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    ));
    let sources: Vec<String> = plan
        .datasets
        .iter()
        .map(|d| match options.data.get(&d.slug) {
            Some(location) => format!("{}: {location}", d.slug),
            None => format!("{}: CLIP_benchmark's mirror", d.slug),
        })
        .collect();
    settings.push(("data".to_string(), sources.join("; ")));
    settings.push(("limit".to_string(), limit_text(options.limit)));
    settings
        .extend(clip_settings(sessions, &["clip.device", "clip.dtype", "clip.batch_size"]).await?);
    let path = options.out.join("settings.json");
    let text = serde_json::to_string_pretty(&settings)
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", path.display())))?;
    std::fs::write(&path, text).map_err(|e| io_error(&path, e))?;
    // Labelled models' sources, which the report reads for their sizes.
    let mut sources = read_model_sources(&options.out)?;
    sources.extend(options.sources.clone());
    let path = options.out.join("model_sources.json");
    let text = serde_json::to_string_pretty(&sources)
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", path.display())))?;
    std::fs::write(&path, text).map_err(|e| io_error(&path, e))
}

/// Where the labelled models of the suites written to `out` load from
/// (label -> source); empty when none was labelled.
pub fn read_model_sources(out: &Path) -> Result<BTreeMap<String, String>> {
    let path = out.join("model_sources.json");
    if !path.is_file() {
        return Ok(BTreeMap::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", path.display())))
}

/// The values of the `clip.*` settings `names` in this suite's sessions.
async fn clip_settings(sessions: &SuiteSessions, names: &[&str]) -> Result<Vec<(String, String)>> {
    let ctx = (sessions.report)().await?;
    let entries = ctx.state().config().options().entries();
    Ok(names
        .iter()
        .map(|name| {
            let value = entries
                .iter()
                .find(|entry| entry.key == *name)
                .and_then(|entry| entry.value.clone())
                .unwrap_or_default();
            (name.to_string(), value)
        })
        .collect())
}

/// With `--resume`: fail, before anything runs, when a run that would be
/// kept was made otherwise than this suite would make it (another limit,
/// data, model source or device setting): the report would mix the two
/// and show this suite's settings for both.
fn refuse_runs_made_otherwise(
    options: &SuiteOptions,
    plan: &Plan,
    device_settings: &[(String, String)],
) -> Result<()> {
    let mut unrecorded = Vec::new();
    for model in &options.models {
        for dataset in &plan.datasets {
            let files = result_files(&options.out, dataset, model);
            if !files.iter().all(|f| f.exists()) {
                continue;
            }
            let Some(recorded) = read_record(&options.out, &dataset.slug, model)? else {
                unrecorded.push(format!("{} × {model}", dataset.slug));
                continue;
            };
            let wanted = run_conditions::run_conditions(options, dataset, model, device_settings);
            if let Some((name, was, now)) = first_difference(&recorded, &wanted) {
                return plan_err!(
                    "--resume would keep {} × {model} from {}, made with {name} = {was}, but \
                     this suite asks for {name} = {now}: resume with what that suite was given, \
                     or pass --overwrite to run everything again",
                    dataset.slug,
                    options.out.display()
                );
            }
        }
    }
    if !unrecorded.is_empty() {
        eprintln!(
            "warning: kept as they are, not knowing how they were made (an older clip-sql \
             wrote them): {}",
            unrecorded.join(", ")
        );
    }
    Ok(())
}

/// The first value of a one-row query, as text.
async fn collect_text(ctx: &SessionContext, sql: &str) -> Result<String> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let batch = batches.iter().find(|b| b.num_rows() > 0);
    Ok(match batch {
        Some(batch) => datafusion::arrow::util::display::array_value_to_string(batch.column(0), 0)?,
        None => String::new(),
    })
}

/// The settings a suite saved in `out`; none when it saved none.
pub fn read_settings(out: &Path) -> Result<Vec<(String, String)>> {
    let path = out.join("settings.json");
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", path.display())))
}
