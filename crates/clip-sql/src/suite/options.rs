//! What `clip-sql suite` is asked to do, and how its models are named in
//! result files and records.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::files::file_name_part;

/// The article's five models.
pub const DEFAULT_MODELS: [&str; 5] = ["RN50", "RN101", "ViT-B/32", "ViT-L/14", "ViT-L/14@336px"];

/// What to do with results already in the output directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExistingResults {
    /// Stop before running anything (nothing a user has is overwritten).
    #[default]
    Refuse,
    /// Keep the (model, dataset) predictions already there; run the rest.
    Resume,
    /// Run everything again, replacing what is there.
    Overwrite,
}

/// What `clip-sql suite` was asked to do.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// The models as results name them: a model's name, directory or
    /// repository, or the label given as `--models label=source`.
    pub models: Vec<String>,
    /// Where each labelled model loads from (label -> source).
    pub sources: BTreeMap<String, String>,
    /// `None`: every dataset of the catalogue that has data.
    pub datasets: Option<Vec<String>>,
    /// Images per (model, dataset), for quick runs.
    pub limit: Option<u64>,
    /// Where a dataset's shards are, overriding the file's default.
    pub data: BTreeMap<String, String>,
    /// `model=weight,...` for the report's ensemble (`None`: the article's).
    pub ensemble: Option<String>,
    /// A folder with `clip-sql bench`'s efficiency.csv, for the report.
    pub efficiency: Option<PathBuf>,
    pub out: PathBuf,
    /// `sql/benchmarks`: the benchmark files, `datasets.csv`, `report.sql`.
    pub benchmarks: PathBuf,
    /// `sql/data`: class names, templates, regions, published figures.
    pub sqldata: PathBuf,
    pub existing: ExistingResults,
}

impl SuiteOptions {
    /// What `model` (a name in the results) loads from.
    pub fn source_of<'a>(&'a self, model: &'a str) -> &'a str {
        self.sources.get(model).map_or(model, String::as_str)
    }
}

/// A model's name in file names: `ViT-L/14@336px` -> `ViT-L-14@336px`; a
/// local directory is its last component.
pub fn model_file_name(model: &str) -> String {
    let name = if Path::new(model).is_dir() {
        Path::new(model.trim_end_matches('/'))
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| model.to_string())
    } else {
        model.trim_start_matches("hf:").to_string()
    };
    file_name_part(&name)
}

/// `--limit` as the report and the run records say it.
pub fn limit_text(limit: Option<u64>) -> String {
    limit.map_or("none (every test image)".to_string(), |l| {
        format!("{l} images per run")
    })
}
