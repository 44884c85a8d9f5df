//! Test helpers of the whole product: those of the model crate's tests (a
//! tiny random-weight CLIP, images made in memory, the repository's path;
//! `crates/clip-model/tests/model/support.rs`), plus image folders and
//! WebDataset shards on disk, the `clip-sql` binary, and a session with
//! everything registered.
#![allow(dead_code)]

use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use image::ImageFormat;

// The model, images and paths, shared with the model crate's own tests.
#[path = "../crates/clip-model/tests/model/support.rs"]
mod model_support;
pub use model_support::*;

/// Run the `clip-sql` binary with `args`, never reaching for the network.
pub fn clip_sql(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_clip-sql"))
        .current_dir(repo())
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("clip-sql runs")
}

/// `clip-sql suite` over this repository's benchmark files and data, with
/// results in `out`; `data` holds `--data` values, `extra` more arguments.
pub fn run_suite(
    out: &Path,
    models: &str,
    datasets: &str,
    data: &[String],
    extra: &[&str],
) -> std::process::Output {
    let out = out.display().to_string();
    let root = repo();
    let benchmarks = format!("{root}/sql/benchmarks");
    let sqldata = format!("{root}/sql/data");
    let mut args = vec![
        "suite",
        "--models",
        models,
        "--datasets",
        datasets,
        "--out",
        &out,
        "--benchmarks",
        &benchmarks,
        "--sqldata",
        &sqldata,
    ];
    for d in data {
        args.extend(["--data", d.as_str()]);
    }
    args.extend(extra);
    clip_sql(&args)
}

/// A session with the CLIP functions, settings and tables registered.
pub fn context() -> SessionContext {
    let ctx = SessionContext::new_with_config(
        datafusion_clip::session_config().with_information_schema(true),
    );
    datafusion_clip::register(&ctx).unwrap();
    ctx
}

/// Run `sql` and collect the batches.
pub async fn query(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<Vec<RecordBatch>> {
    ctx.sql(sql).await?.collect().await
}

/// Run `sql` and render it as datafusion's pretty table.
pub async fn query_text(ctx: &SessionContext, sql: &str) -> String {
    let batches = query(ctx, sql).await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

/// The data rows of a pretty-printed table, cells trimmed.
pub fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// Write `files` (relative path, bytes) under a new temporary directory.
pub fn folder(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, bytes) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    dir
}

/// An image folder of `n` small PNGs (widths 24 to 32) in one class
/// folder `c/`: enough forward passes at `clip.batch_size = 1` to stop one
/// in the middle of.
pub fn png_folder(n: u32) -> tempfile::TempDir {
    let files: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("c/{i:03}.png"), png_bytes(24 + i % 9, 30, i)))
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    folder(&files)
}

/// A small labelled image folder: cat/ and dog/ with PNG, JPEG, grayscale
/// and RGBA images, plus a non-image file.
pub fn pets_folder() -> tempfile::TempDir {
    folder(&[
        ("cat/cat1.png", png_bytes(40, 30, 1)),
        ("cat/cat2.jpg", jpeg_bytes(50, 64, 2)),
        ("cat/cat3.png", gray_png_bytes(33, 33)),
        ("dog/dog1.png", rgba_png_bytes(64, 48)),
        ("dog/dog2.jpeg", jpeg_bytes(32, 32, 5)),
        ("dog/notes.txt", b"not an image".to_vec()),
    ])
}

/// One WebDataset sample: key and members (extension, bytes).
pub type Sample = (String, Vec<(&'static str, Vec<u8>)>);

/// A WebDataset tar shard of `samples`, written with the `tar` crate.
pub fn webdataset_shard(samples: &[Sample]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (key, members) in samples {
        for (ext, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, format!("{key}.{ext}"), data.as_slice())
                .unwrap();
        }
    }
    builder.into_inner().unwrap()
}

/// The physical plan `ctx` makes of `sql`, not run.
pub async fn physical_plan_of(
    ctx: &SessionContext,
    sql: &str,
) -> std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan> {
    ctx.sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap()
}

/// Run `sql` keeping its physical plan, for the metrics it counted: the
/// plan and the result as a pretty-printed table.
pub async fn query_with_plan(
    ctx: &SessionContext,
    sql: &str,
) -> (
    std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    String,
) {
    let plan = physical_plan_of(ctx, sql).await;
    let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    (plan, text)
}

/// The sum of metric `name` over every node of an executed plan.
pub fn metric_sum(plan: &dyn datafusion::physical_plan::ExecutionPlan, name: &str) -> usize {
    struct Sum<'a>(&'a str, usize);
    impl datafusion::physical_plan::ExecutionPlanVisitor for Sum<'_> {
        type Error = datafusion::error::DataFusionError;
        fn pre_visit(
            &mut self,
            plan: &dyn datafusion::physical_plan::ExecutionPlan,
        ) -> Result<bool, Self::Error> {
            if let Some(metrics) = plan.metrics() {
                self.1 += metrics.sum_by_name(self.0).map_or(0, |v| v.as_usize());
            }
            Ok(true)
        }
    }
    let mut sum = Sum(name, 0);
    datafusion::physical_plan::accept(plan, &mut sum).unwrap();
    sum.1
}

/// (dataset, task) of each row of `sql/benchmarks/datasets.csv`, in its
/// order (the task is the last field; quoted fields hold commas).
fn catalogue_rows() -> Vec<(String, String)> {
    std::fs::read_to_string(format!("{ROOT}/sql/benchmarks/datasets.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let slug = line.split(',').next().unwrap().to_string();
            let task = line.rsplit(',').next().unwrap().to_string();
            (slug, task)
        })
        .collect()
}

/// The classification datasets of `sql/benchmarks/datasets.csv`, in its order.
pub fn benchmark_datasets() -> Vec<String> {
    catalogue_rows()
        .into_iter()
        .filter(|(_, task)| task != "retrieval")
        .map(|(slug, _)| slug)
        .collect()
}

/// The retrieval datasets of `sql/benchmarks/datasets.csv`.
pub fn retrieval_datasets() -> Vec<String> {
    catalogue_rows()
        .into_iter()
        .filter(|(_, task)| task == "retrieval")
        .map(|(slug, _)| slug)
        .collect()
}

/// Stand-in shards in CLIP_benchmark's retrieval layout: `dataset_type.txt`
/// and two shards of three samples, each a 32x32 WebP and two captions.
pub fn retrieval_standin(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("dataset_type.txt"), "retrieval\n").unwrap();
    for s in 0..2u32 {
        let samples: Vec<Sample> = (0..3u32)
            .map(|i| {
                let n = s * 3 + i;
                (
                    format!("{n:06}"),
                    vec![
                        ("webp", encode(&rgb_image(32, 32, n), ImageFormat::WebP)),
                        ("txt", format!("picture {n}\nimage number {n}").into_bytes()),
                    ],
                )
            })
            .collect();
        std::fs::write(dir.join(format!("{s}.tar")), webdataset_shard(&samples)).unwrap();
    }
}

/// How many classes `sql/data/classnames/<slug>.csv` lists.
pub fn class_count(slug: &str) -> usize {
    std::fs::read_to_string(format!("{ROOT}/sql/data/classnames/{slug}.csv"))
        .unwrap()
        .lines()
        .count()
        - 1
}

/// Stand-in shards for a benchmark: two shards of three 32x32 samples
/// (keys 000000..000005), labels 0, `classes - 1` and 1 in each.
pub fn standin_shards(dir: &Path, classes: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for s in 0..2u32 {
        let samples: Vec<Sample> = (0..3u32)
            .map(|i| {
                let n = s * 3 + i;
                let label = [0, classes - 1, 1 % classes][i as usize];
                (
                    format!("{n:06}"),
                    vec![
                        ("cls", label.to_string().into_bytes()),
                        ("webp", encode(&rgb_image(32, 32, n), ImageFormat::WebP)),
                    ],
                )
            })
            .collect();
        std::fs::write(dir.join(format!("{s}.tar")), webdataset_shard(&samples)).unwrap();
    }
}

/// The pixels of record `seed` as CIFAR stores them: R, G and B planes.
pub fn planes(seed: u32) -> Vec<u8> {
    let img = rgb_image(32, 32, seed).to_rgb8();
    let mut out = vec![0u8; 3 * 1024];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * 1024 + i] = px.0[c];
        }
    }
    out
}

/// A CIFAR-10 batch file: (label, seed) per record.
pub fn cifar10_batch(records: &[(u8, u32)]) -> Vec<u8> {
    records
        .iter()
        .flat_map(|&(label, seed)| std::iter::once(label).chain(planes(seed)))
        .collect()
}
