//! The article's report over a results directory's saved predictions.
//!
//! Which part is SQL: every table is a `CREATE TABLE` of
//! `sql/benchmarks/report.sql` (and of `report_efficiency.sql` when a bench
//! result is given, `report_retrieval.sql` when retrieval runs are saved),
//! written to `tables/*.csv`. What is made here, in Rust,
//! from those tables: the accuracy matrix (a pivot whose columns are the
//! models of the run, `tables/accuracy_matrix.csv`), CLIP_benchmark's JSON
//! files, the charts and the page (`report.html`, `report.md`). So
//! `clip-sql report --results DIR` (or the end of `clip-sql suite`)
//! rebuilds all of it from `predictions/` and `probabilities/` alone:
//! re-weighing the ensemble updates every table, chart and the page.
//!
//! ```text
//! <results>/tables/*.csv             the report's tables
//! <results>/clip_benchmark/*.json    CLIP_benchmark's result files
//! <results>/charts/*.svg, *.png      accuracy by dataset, by task group,
//!                                    parameters vs mean top-1, Country211 by region
//! <results>/report.html, report.md   everything on one page
//! ```

pub mod charts;
pub mod clip_benchmark_json;
pub mod contents;
pub mod page;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::common::{DataFusionError, Result};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion_clip::clip_model;

use crate::catalogue::Dataset;
use crate::files::io_error;
use crate::sql_params;
use crate::sql_runner::{run_statement, split_script};
use charts::{GroupedBars, Scatter, ScatterPoint};
use clip_benchmark_json::Metrics;
pub use contents::{ReportInputs, ReportTable, model_label};

/// What the report wrote.
#[derive(Debug)]
pub struct Report {
    pub tables: Vec<ReportTable>,
    /// The tables as printed text, as `clip-sql suite` prints them.
    pub tables_text: String,
    pub json_files: Vec<PathBuf>,
    pub charts: Vec<PathBuf>,
    pub pages: Vec<PathBuf>,
}

/// Build every table, chart and file of the report in `ctx` (a session
/// with the CLIP functions registered).
pub async fn build_report(inputs: &ReportInputs, ctx: &SessionContext) -> Result<Report> {
    let out = &inputs.results;
    for dir in ["tables", "clip_benchmark", "charts"] {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    }
    register_models(ctx, &inputs.models, &inputs.sources).await?;
    let mut params = BTreeMap::from([
        ("results".to_string(), path_text(out)),
        ("sqldata".to_string(), path_text(&inputs.sqldata)),
        ("benchmarks".to_string(), path_text(&inputs.benchmarks)),
    ]);
    if let Some(weights) = &inputs.ensemble {
        params.insert("ensemble".to_string(), weights.clone());
    }
    // Classification runs (predictions/) make report.sql's tables, the
    // matrix and the charts; retrieval runs make report_retrieval.sql's.
    let classification = holds_parquet(&out.join("predictions"));
    let retrieval = holds_parquet(&out.join("image_retrieval"));
    if !classification && !retrieval {
        return Err(DataFusionError::Plan(format!(
            "{} holds no saved runs (predictions/ or image_retrieval/): run \
             `clip-sql suite --out {}` first",
            out.display(),
            out.display()
        )));
    }
    let mut tables = vec![models_table(ctx, out).await?];
    if classification {
        tables.extend(run_sql_file(&inputs.benchmarks.join("report.sql"), &params, ctx).await?);
    }
    if let Some(dir) = &inputs.efficiency {
        check_efficiency_dir(dir)?;
        if !classification {
            return Err(DataFusionError::Plan(
                "--efficiency puts speed beside classification accuracy; these results \
                 hold no classification runs"
                    .to_string(),
            ));
        }
        params.insert("efficiency".to_string(), path_text(dir));
        let efficiency = run_sql_file(
            &inputs.benchmarks.join("report_efficiency.sql"),
            &params,
            ctx,
        )
        .await?;
        tables.extend(efficiency);
    }
    if retrieval {
        tables.extend(
            run_sql_file(
                &inputs.benchmarks.join("report_retrieval.sql"),
                &params,
                ctx,
            )
            .await?,
        );
    }
    if classification {
        warn_without_ensemble(ctx).await?;
        tables.push(accuracy_matrix(ctx, &inputs.catalogue, &inputs.models, out).await?);
    }
    let mut tables_text = String::new();
    for table in &tables {
        tables_text.push_str(&format!(
            "\n{}\n{}\n",
            table.heading,
            pretty_format_batches(&table.batches)?
        ));
    }

    let metrics = read_metrics(ctx, classification, retrieval).await?;
    let names: BTreeMap<String, String> = inputs
        .catalogue
        .iter()
        .map(|d| (d.slug.clone(), d.clip_benchmark.clone()))
        .collect();
    let json_files =
        clip_benchmark_json::write_results(&out.join("clip_benchmark"), &metrics, |slug| {
            names.get(slug).cloned().unwrap_or_else(|| slug.to_string())
        })
        .map_err(|e| DataFusionError::Execution(format!("writing CLIP_benchmark results: {e}")))?;
    let charts = if classification {
        draw_charts(ctx, &inputs.catalogue, &inputs.models, out).await?
    } else {
        Vec::new()
    };
    let pages = page::write_pages(inputs, &tables, &charts)?;
    Ok(Report {
        tables,
        tables_text,
        json_files,
        charts,
        pages,
    })
}

/// The models whose runs `results` holds (classification or retrieval): in
/// the order the suite ran them (its runs.csv), any others after, by name.
pub async fn saved_models(ctx: &SessionContext, results: &Path) -> Result<Vec<String>> {
    let folders: Vec<PathBuf> = ["predictions", "image_retrieval"]
        .iter()
        .map(|f| results.join(f))
        .filter(|dir| holds_parquet(dir))
        .collect();
    if folders.is_empty() {
        return Err(DataFusionError::Plan(format!(
            "{} holds no saved runs (predictions/ or image_retrieval/ *.parquet): run \
             `clip-sql suite --out {}` first",
            results.display(),
            results.display()
        )));
    }
    let mut saved = Vec::new();
    for dir in folders {
        let frame = ctx
            .read_parquet(path_text(&dir), Default::default())
            .await?
            .select_columns(&["model"])?
            .distinct()?;
        for batch in frame.collect().await? {
            for model in text_column(&batch, 0)? {
                if !saved.contains(&model) {
                    saved.push(model);
                }
            }
        }
    }
    saved.sort();
    let ran = std::fs::read_to_string(results.join("runs.csv")).unwrap_or_default();
    let position = |model: &String| {
        ran.lines()
            .skip(1)
            .position(|line| line.starts_with(&format!("\"{}\",", model.replace('"', "\"\""))))
            .unwrap_or(usize::MAX)
    };
    saved.sort_by_key(position);
    Ok(saved)
}

/// Whether `dir` holds any Parquet file (a folder of saved runs).
fn holds_parquet(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        })
        .unwrap_or(false)
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Fail unless `dir` (an `--efficiency` folder) holds `clip-sql bench`'s
/// efficiency.csv.
pub fn check_efficiency_dir(dir: &Path) -> Result<()> {
    if dir.join("efficiency.csv").is_file() {
        return Ok(());
    }
    Err(DataFusionError::Plan(format!(
        "--efficiency {}: no efficiency.csv there (clip-sql bench --output <dir> writes it)",
        dir.display()
    )))
}

/// Family and parameter count of a model of the run: from the registry,
/// or from a local directory's config; `None` where neither says.
fn model_facts(model: &str) -> (Option<&'static str>, Option<i64>) {
    use clip_model::checkpoint::{ModelFiles, ModelRef, ModelSource, read_config};
    let Ok(reference) = ModelRef::parse(model) else {
        return (None, None);
    };
    if let Some(known) = reference.known {
        return (
            Some(known.family().as_str()),
            Some(known.parameter_count() as i64),
        );
    }
    let ModelSource::Directory(dir) = &reference.source else {
        return (None, None);
    };
    let config = ModelFiles::in_directory(dir)
        .and_then(|files| read_config(&files.config, files.set.layout));
    match config {
        Ok(config) => {
            let family = if config.resnet.is_some() {
                "ResNet"
            } else {
                "ViT"
            };
            (Some(family), Some(config.parameter_count() as i64))
        }
        Err(_) => (None, None),
    }
}

/// `run_models(model, label, source, family, parameters)`: the run's models with
/// what the report shows of them, for report.sql and the scatter.
async fn register_models(
    ctx: &SessionContext,
    models: &[String],
    sources: &BTreeMap<String, String>,
) -> Result<()> {
    let source_of = |m: &String| sources.get(m).unwrap_or(m).clone();
    let facts: Vec<_> = models.iter().map(|m| model_facts(&source_of(m))).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("family", DataType::Utf8, true),
        Field::new("parameters", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(models.iter())),
            Arc::new(StringArray::from_iter_values(
                models.iter().map(|m| model_label(m)),
            )),
            Arc::new(StringArray::from_iter_values(models.iter().map(source_of))),
            Arc::new(StringArray::from_iter(facts.iter().map(|f| f.0))),
            Arc::new(Int64Array::from_iter(facts.iter().map(|f| f.1))),
        ],
    )?;
    ctx.deregister_table("run_models")?;
    ctx.register_table(
        "run_models",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    Ok(())
}

/// The run's models: label, where its weights come from, family and size (millions of
/// parameters, from the architecture); also tables/models.csv.
async fn models_table(ctx: &SessionContext, out: &Path) -> Result<ReportTable> {
    // A registry name's weights are its hub repository (clip_models()).
    let sql = "SELECT m.label AS model, coalesce(c.weights, m.source) AS weights, m.family, \
               round(m.parameters / 1e6, 2) AS parameters_millions \
               FROM run_models m LEFT JOIN clip_models() c ON m.source = c.name";
    let batches = query_to_csv(ctx, sql, &out.join("tables").join("models.csv")).await?;
    Ok(ReportTable {
        name: "models".to_string(),
        heading: "-- The models of this run: family and parameters counted from the \
                  architecture (equal to open_clip's published counts for OpenAI's)."
            .to_string(),
        sql: sql.to_string(),
        batches,
    })
}

/// Run a report SQL file; one [`ReportTable`] per query in it, with the
/// `CREATE TABLE` the query reads as its SQL.
async fn run_sql_file(
    path: &Path,
    params: &BTreeMap<String, String>,
    ctx: &SessionContext,
) -> Result<Vec<ReportTable>> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    let script = sql_params::substitute(&text, params, &mut BTreeSet::new())
        .map_err(|e| DataFusionError::Plan(format!("{}: {e}", path.display())))?;
    let mut tables = Vec::new();
    let mut heading = String::new();
    let mut created: BTreeMap<String, String> = BTreeMap::new();
    let in_file =
        |e: DataFusionError| DataFusionError::Execution(format!("{}: {e}", path.display()));
    for statement in split_script(ctx, &script).map_err(in_file)? {
        if !statement.comment.is_empty() {
            heading = statement.comment.clone();
        }
        let batches = run_statement(ctx, &statement).await.map_err(in_file)?;
        if let Some(name) = statement.created_table() {
            created.insert(name, statement.sql.clone());
        }
        if statement.is_query() {
            let words: Vec<&str> = statement.sql.split_whitespace().collect();
            let name = match words.as_slice() {
                ["SELECT", "*", "FROM", name, ..] => name.trim_end_matches(';').to_string(),
                _ => format!("query_{}", tables.len() + 1),
            };
            let sql = created
                .get(&name)
                .cloned()
                .unwrap_or_else(|| statement.sql.clone());
            tables.push(ReportTable {
                name,
                heading: heading.clone(),
                sql,
                batches,
            });
        }
    }
    Ok(tables)
}

/// Say so when no dataset has predictions from every ensemble member.
async fn warn_without_ensemble(ctx: &SessionContext) -> Result<()> {
    let ensembled = collect_sql(ctx, "SELECT count(*) FROM ensemble").await?;
    let empty = ensembled
        .iter()
        .all(|b| b.num_rows() == 0 || b.column(0).as_primitive::<Int64Type>().value(0) == 0);
    if empty {
        let members = collect_sql(
            ctx,
            "SELECT model FROM ensemble_weights ORDER BY weight DESC",
        )
        .await?;
        let names: Vec<String> = members
            .iter()
            .map(|b| text_column(b, 0))
            .collect::<Result<Vec<_>>>()?
            .concat();
        eprintln!(
            "No ensemble: no dataset has predictions from all of its members ({}); \
             name members that ran with --ensemble model=weight,...",
            names.join(", ")
        );
    }
    Ok(())
}

/// The order task groups are shown in: as they first appear in the
/// catalogue.
fn task_order(catalogue: &[Dataset]) -> Vec<String> {
    let mut tasks: Vec<String> = Vec::new();
    for dataset in catalogue {
        if !tasks.contains(&dataset.task) {
            tasks.push(dataset.task.clone());
        }
    }
    tasks
}

/// Accuracy (top-1, percent) with datasets down, grouped by task as the
/// article lays its tables out, and models across, plus the mean over
/// datasets; also saved as tables/accuracy_matrix.csv.
async fn accuracy_matrix(
    ctx: &SessionContext,
    catalogue: &[Dataset],
    models: &[String],
    out: &Path,
) -> Result<ReportTable> {
    let literal = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let identifier = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let columns: Vec<String> = models
        .iter()
        .map(|m| {
            format!(
                "max(CASE WHEN model = {} THEN acc1 END) AS {}",
                literal(m),
                identifier(&model_label(m))
            )
        })
        .collect();
    // Task groups in catalogue order, datasets in catalogue order within.
    let tasks = task_order(catalogue);
    let mut ordered: Vec<&Dataset> = catalogue.iter().collect();
    ordered.sort_by_key(|d| tasks.iter().position(|t| *t == d.task));
    let order: Vec<String> = ordered
        .iter()
        .enumerate()
        .map(|(i, d)| format!("WHEN {} THEN {i}", literal(&d.slug)))
        .collect();
    let sql = format!(
        "SELECT task, dataset, {columns} FROM (\n\
         \x20 SELECT task, dataset, model, acc1,\n\
         \x20        CASE dataset {order} ELSE {last} END AS position\n\
         \x20 FROM accuracy\n\
         \x20 UNION ALL\n\
         \x20 SELECT '' AS task, 'mean' AS dataset, model, round(avg(acc1), 2) AS acc1, {mean} AS position\n\
         \x20 FROM accuracy GROUP BY model)\n\
         GROUP BY task, dataset, position ORDER BY position, dataset",
        columns = columns.join(", "),
        order = order.join(" "),
        last = catalogue.len(),
        mean = catalogue.len() + 1,
    );
    let batches = query_to_csv(ctx, &sql, &out.join("tables").join("accuracy_matrix.csv")).await?;
    Ok(ReportTable {
        name: "accuracy_matrix".to_string(),
        heading: "-- Top-1 accuracy (percent) by dataset and model, datasets grouped by task as \
                  in the article;\n-- mean: the mean over the datasets a model ran."
            .to_string(),
        sql,
        batches,
    })
}

/// Run `sql`, write its rows to the CSV file `path` and return them.
async fn query_to_csv(ctx: &SessionContext, sql: &str, path: &Path) -> Result<Vec<RecordBatch>> {
    let frame = ctx.sql(sql).await?;
    let batches = frame.clone().collect().await?;
    frame
        .write_csv(
            &path.to_string_lossy(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await?;
    Ok(batches)
}

async fn collect_sql(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    ctx.sql(sql).await?.collect().await
}

fn text_column(batch: &RecordBatch, i: usize) -> Result<Vec<String>> {
    let column = datafusion::arrow::compute::cast(batch.column(i), &DataType::Utf8)?;
    let column = column.as_string::<i32>();
    Ok((0..column.len())
        .map(|r| {
            if column.is_null(r) {
                String::new()
            } else {
                column.value(r).to_string()
            }
        })
        .collect())
}

fn float_column(batch: &RecordBatch, i: usize) -> Result<Vec<Option<f64>>> {
    let column = datafusion::arrow::compute::cast(batch.column(i), &DataType::Float64)?;
    let column = column.as_primitive::<Float64Type>();
    Ok((0..column.len())
        .map(|r| (!column.is_null(r)).then(|| column.value(r)))
        .collect())
}

async fn read_metrics(
    ctx: &SessionContext,
    classification: bool,
    retrieval: bool,
) -> Result<Vec<Metrics>> {
    let mut rows = Vec::new();
    if classification {
        rows = classification_metrics(ctx).await?;
    }
    if retrieval {
        rows.extend(retrieval_metrics(ctx).await?);
    }
    Ok(rows)
}

async fn classification_metrics(ctx: &SessionContext) -> Result<Vec<Metrics>> {
    let batches = collect_sql(
        ctx,
        "SELECT model, dataset, acc1, acc5, mean_per_class_recall FROM metrics ORDER BY dataset, model",
    )
    .await?;
    let mut rows = Vec::new();
    for batch in &batches {
        let models = text_column(batch, 0)?;
        let datasets = text_column(batch, 1)?;
        let acc1 = float_column(batch, 2)?;
        let acc5 = float_column(batch, 3)?;
        let recall = float_column(batch, 4)?;
        for r in 0..batch.num_rows() {
            rows.push(Metrics {
                model: models[r].clone(),
                dataset: datasets[r].clone(),
                task: "zeroshot_classification",
                metrics: serde_json::json!({
                    "acc1": acc1[r].unwrap_or(0.0),
                    "acc5": acc5[r],
                    "mean_per_class_recall": recall[r].unwrap_or(0.0),
                }),
            });
        }
    }
    Ok(rows)
}

async fn retrieval_metrics(ctx: &SessionContext) -> Result<Vec<Metrics>> {
    let mut rows = Vec::new();
    // CLIP_benchmark's retrieval metrics are fractions; the table's are percent.
    let names = [
        "image_retrieval_recall@1",
        "image_retrieval_recall@5",
        "image_retrieval_recall@10",
        "text_retrieval_recall@1",
        "text_retrieval_recall@5",
        "text_retrieval_recall@10",
    ];
    let columns: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let batches = collect_sql(
        ctx,
        &format!(
            "SELECT model, dataset, {} FROM retrieval ORDER BY dataset, model",
            columns.join(", ")
        ),
    )
    .await?;
    for batch in &batches {
        let models = text_column(batch, 0)?;
        let datasets = text_column(batch, 1)?;
        let values: Vec<Vec<Option<f64>>> = (0..names.len())
            .map(|i| float_column(batch, i + 2))
            .collect::<Result<_>>()?;
        for r in 0..batch.num_rows() {
            let mut metrics = serde_json::Map::new();
            for (name, column) in names.iter().zip(&values) {
                metrics.insert(name.to_string(), column[r].map(|v| v / 100.0).into());
            }
            rows.push(Metrics {
                model: models[r].clone(),
                dataset: datasets[r].clone(),
                task: "zeroshot_retrieval",
                metrics: metrics.into(),
            });
        }
    }
    Ok(rows)
}

/// The run's models as chart series: (key in the tables, label).
fn model_series(models: &[String]) -> Vec<(String, String)> {
    models.iter().map(|m| (m.clone(), model_label(m))).collect()
}

/// Bars from a query's rows `(group, series, value)`: one bar per
/// `series` (key, label); groups in `group_order` (key, label) where
/// given, else as they come.
fn grouped_bars(
    title: &str,
    value_label: &str,
    batches: &[RecordBatch],
    series: &[(String, String)],
    group_order: &[(String, String)],
) -> Result<GroupedBars> {
    let mut values: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut seen_groups: Vec<String> = Vec::new();
    for batch in batches {
        let groups = text_column(batch, 0)?;
        let keys = text_column(batch, 1)?;
        let figures = float_column(batch, 2)?;
        for r in 0..batch.num_rows() {
            if let Some(v) = figures[r] {
                values.insert((groups[r].clone(), keys[r].clone()), v);
            }
            if !seen_groups.contains(&groups[r]) {
                seen_groups.push(groups[r].clone());
            }
        }
    }
    let groups: Vec<(String, String)> = if group_order.is_empty() {
        seen_groups.iter().map(|g| (g.clone(), g.clone())).collect()
    } else {
        group_order
            .iter()
            .filter(|(key, _)| seen_groups.contains(key))
            .cloned()
            .collect()
    };
    Ok(GroupedBars {
        title: title.to_string(),
        value_label: value_label.to_string(),
        groups: groups.iter().map(|(_, name)| name.clone()).collect(),
        series: series.iter().map(|(_, label)| label.clone()).collect(),
        values: groups
            .iter()
            .map(|(group, _)| {
                series
                    .iter()
                    .map(|(key, _)| values.get(&(group.clone(), key.clone())).copied())
                    .collect()
            })
            .collect(),
    })
}

fn chart_error(e: charts::ChartError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

async fn draw_charts(
    ctx: &SessionContext,
    catalogue: &[Dataset],
    models: &[String],
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let dir = out.join("charts");
    let mut write = |chart: &GroupedBars, name: &str| -> Result<()> {
        let stem = dir.join(name);
        charts::write_grouped_bars(chart, &stem).map_err(chart_error)?;
        written.extend([stem.with_extension("svg"), stem.with_extension("png")]);
        Ok(())
    };

    let accuracy = collect_sql(ctx, "SELECT dataset, model, acc1 FROM accuracy").await?;
    let order: Vec<(String, String)> = catalogue
        .iter()
        .map(|d| (d.slug.clone(), d.name.clone()))
        .collect();
    let chart = grouped_bars(
        "Zero-shot top-1 accuracy by dataset and model",
        "top-1 accuracy (%)",
        &accuracy,
        &model_series(models),
        &order,
    )?;
    write(&chart, "accuracy_by_model_and_dataset")?;

    let by_task = collect_sql(ctx, "SELECT task, model, mean_acc1 FROM accuracy_by_task").await?;
    let tasks: Vec<(String, String)> = task_order(catalogue)
        .into_iter()
        .map(|t| (t.clone(), t))
        .collect();
    let chart = grouped_bars(
        "Mean zero-shot top-1 accuracy by task group",
        "mean top-1 accuracy over the group's datasets (%)",
        &by_task,
        &model_series(models),
        &tasks,
    )?;
    write(&chart, "accuracy_by_task")?;

    // Regions from the best-recognised down, by their mean over models,
    // each with its number of test images.
    let regions = collect_sql(
        ctx,
        "SELECT c.region || ' (' || CAST(r.n AS VARCHAR) \
                || CASE WHEN r.n = 1 THEN ' image)' ELSE ' images)' END, c.model, c.acc1
         FROM country211_by_region c
         JOIN (SELECT region, avg(acc1) AS mean, max(n) AS n FROM country211_by_region
               GROUP BY region) r
           ON c.region = r.region
         ORDER BY r.mean DESC, c.region",
    )
    .await?;
    if regions.iter().any(|b| b.num_rows() > 0) {
        let chart = grouped_bars(
            "Country211: top-1 accuracy by region",
            "top-1 accuracy (%)",
            &regions,
            &model_series(models),
            &[],
        )?;
        write(&chart, "country211_by_region")?;
    }

    // The ensemble against its members, each labelled with its weight, so
    // the chart follows --ensemble.
    let ensemble = collect_sql(ctx, "SELECT dataset, model, acc1 FROM ensemble").await?;
    if ensemble.iter().any(|b| b.num_rows() > 0) {
        let weights = collect_sql(
            ctx,
            "SELECT model, weight FROM ensemble_weights ORDER BY weight DESC, model",
        )
        .await?;
        let mut series = Vec::new();
        for batch in &weights {
            let members = text_column(batch, 0)?;
            let weights = float_column(batch, 1)?;
            for (member, weight) in members.iter().zip(weights) {
                let weight = weight.map_or(String::new(), |w| format!(" × {w}"));
                series.push((member.clone(), format!("{}{weight}", model_label(member))));
            }
        }
        series.push(("ensemble".to_string(), "ensemble".to_string()));
        let chart = grouped_bars(
            "The weighted ensemble against its members",
            "top-1 accuracy (%)",
            &ensemble,
            &series,
            &order,
        )?;
        write(&chart, "ensemble_by_dataset")?;
    }

    let scatter = parameters_scatter(ctx).await?;
    if !scatter.points.is_empty() {
        let stem = dir.join("parameters_vs_accuracy");
        charts::write_scatter(&scatter, &stem).map_err(chart_error)?;
        written.extend([stem.with_extension("svg"), stem.with_extension("png")]);
    }
    Ok(written)
}

/// Mean top-1 against parameters: this run's models, and OpenAI's nine
/// checkpoints as published, each mean over the datasets of this run that
/// have a published figure (so the two are comparable).
async fn parameters_scatter(ctx: &SessionContext) -> Result<Scatter> {
    let ours = collect_sql(
        ctx,
        "SELECT m.label, m.family, m.parameters, avg(a.acc1)
         FROM accuracy a JOIN run_models m ON a.model = m.model
         WHERE m.parameters IS NOT NULL
           AND a.dataset IN (SELECT dataset FROM published_accuracy)
         GROUP BY m.label, m.family, m.parameters",
    )
    .await?;
    let published = collect_sql(
        ctx,
        "SELECT p.model, c.family, c.parameters, avg(p.acc1)
         FROM published_accuracy p JOIN clip_models() c ON p.model = c.name
         WHERE p.dataset IN (SELECT DISTINCT dataset FROM accuracy)
         GROUP BY p.model, c.family, c.parameters",
    )
    .await?;
    let mut points = Vec::new();
    for (batches, measured) in [(&ours, true), (&published, false)] {
        for batch in batches.iter() {
            let labels = text_column(batch, 0)?;
            let families = text_column(batch, 1)?;
            let parameters = float_column(batch, 2)?;
            let means = float_column(batch, 3)?;
            for r in 0..batch.num_rows() {
                if let (Some(parameters), Some(mean)) = (parameters[r], means[r]) {
                    points.push(ScatterPoint {
                        label: labels[r].clone(),
                        series: families[r].clone(),
                        measured,
                        x: parameters / 1e6,
                        y: mean,
                    });
                }
            }
        }
    }
    points.sort_by(|a, b| a.label.cmp(&b.label).then(a.measured.cmp(&b.measured)));
    Ok(Scatter {
        title: "Mean zero-shot top-1 against parameters".to_string(),
        x_label: "parameters (millions, log scale)".to_string(),
        y_label: "mean top-1 over this run's datasets with a published figure (%)".to_string(),
        points,
    })
}
