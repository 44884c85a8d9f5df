//! The datasets the suite knows: `sql/benchmarks/datasets.csv`, written by
//! `make_benchmark_files.py` next to the benchmark files it describes.

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Result, plan_err};
use datafusion::prelude::{CsvReadOptions, SessionContext};

/// One benchmark dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// File stem of `sql/benchmarks/<slug>.sql`, and the `dataset` column.
    pub slug: String,
    /// Human name, for charts.
    pub name: String,
    /// The name CLIP_benchmark's results carry (`wds/vtab/cifar10`).
    pub clip_benchmark: String,
    /// Whether the file reads a public mirror when no `data` is given.
    pub has_default_data: bool,
    /// The article's task group (`general objects`, `fine-grained`, ...).
    pub task: String,
}

impl Dataset {
    /// A zero-shot retrieval dataset (task `retrieval`): its file ranks
    /// images and captions instead of predicting classes.
    pub fn is_retrieval(&self) -> bool {
        self.task == "retrieval"
    }
}

/// Read the catalogue in `benchmarks_dir`.
pub async fn read_catalogue(benchmarks_dir: &Path) -> Result<Vec<Dataset>> {
    let path = benchmarks_dir.join("datasets.csv");
    if !path.is_file() {
        return plan_err!(
            "no dataset catalogue at {} (pass --benchmarks <the sql/benchmarks directory>)",
            path.display()
        );
    }
    // Every column as text: the catalogue is small and read once.
    let columns = [
        "dataset",
        "name",
        "clip_benchmark",
        "has_default_data",
        "test_images",
        "task",
    ];
    let schema = Schema::new(
        columns
            .map(|n| Field::new(n, DataType::Utf8, true))
            .to_vec(),
    );
    let ctx = SessionContext::new();
    let batches = ctx
        .read_csv(
            path.to_string_lossy().as_ref(),
            CsvReadOptions::new().schema(&schema),
        )
        .await?
        .collect()
        .await?;
    let mut datasets = Vec::new();
    for batch in batches {
        let text = |i: usize, row: usize| {
            let column = batch.column(i).as_string::<i32>();
            if column.is_null(row) {
                String::new()
            } else {
                column.value(row).to_string()
            }
        };
        for row in 0..batch.num_rows() {
            datasets.push(Dataset {
                slug: text(0, row),
                name: text(1, row),
                clip_benchmark: text(2, row),
                has_default_data: text(3, row) == "true",
                task: text(5, row),
            });
        }
    }
    Ok(datasets)
}
