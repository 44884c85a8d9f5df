//! What a report is built from and made of: its inputs, its tables, and
//! how it names a model in headers and legends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;

use crate::catalogue::Dataset;

/// What a report is built from.
#[derive(Debug, Clone)]
pub struct ReportInputs {
    /// The results directory: `predictions/`, `probabilities/` in; the
    /// rest out.
    pub results: PathBuf,
    /// `sql/benchmarks`: `report.sql`, `report_efficiency.sql`, `datasets.csv`.
    pub benchmarks: PathBuf,
    /// `sql/data`: published figures, regions.
    pub sqldata: PathBuf,
    /// `model=weight,...` (`None`: the article's ensemble).
    pub ensemble: Option<String>,
    /// A folder holding `clip-sql bench`'s `efficiency.csv`.
    pub efficiency: Option<PathBuf>,
    /// The models, in the order tables and charts show them.
    pub models: Vec<String>,
    /// Where labelled models load from (label -> source), for their sizes.
    pub sources: BTreeMap<String, String>,
    pub catalogue: Vec<Dataset>,
    /// What ran, shown at the top of the page (name, value).
    pub settings: Vec<(String, String)>,
}

/// One table of the report: its heading, the SQL that made it, its rows.
#[derive(Debug, Clone)]
pub struct ReportTable {
    /// File stem under `tables/` (`accuracy`), or the query's own name.
    pub name: String,
    pub heading: String,
    pub sql: String,
    pub batches: Vec<RecordBatch>,
}

/// How a model is shown in legends and headers: a registry name as it is,
/// a local directory by its last component.
pub fn model_label(model: &str) -> String {
    let path = Path::new(model.trim_end_matches('/'));
    if clip_model::find_known(model).is_none()
        && path.is_dir()
        && let Some(name) = path.file_name()
    {
        return name.to_string_lossy().into_owned();
    }
    model.to_string()
}
