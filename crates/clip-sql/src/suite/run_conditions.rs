//! What shaped a run's figures, saved beside its predictions
//! (`<out>/runs/<dataset>__<model>.json`), so that `--resume` keeps a run
//! only when this suite would make it the same way. A quick look with
//! `--limit 500` followed by the full suite with `--resume` kept the
//! 500-image runs, and the report said "every test image".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::common::{DataFusionError, Result};

use super::options::{SuiteOptions, limit_text, model_file_name};
use crate::catalogue::Dataset;
use crate::files::io_error;

/// The folder of `<out>` the records go to.
pub const RUNS_FOLDER: &str = "runs";

/// What a run of `model` over `dataset` is made with in this suite: its
/// image limit, data, model source, benchmark files and the device
/// settings (`clip.device`, `clip.dtype`, given as `device_settings`).
pub fn run_conditions(
    options: &SuiteOptions,
    dataset: &Dataset,
    model: &str,
    device_settings: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut conditions = BTreeMap::new();
    conditions.insert("limit".to_string(), limit_text(options.limit));
    conditions.insert(
        "data".to_string(),
        options
            .data
            .get(&dataset.slug)
            .cloned()
            .unwrap_or_else(|| "CLIP_benchmark's mirror".to_string()),
    );
    conditions.insert("model".to_string(), options.source_of(model).to_string());
    conditions.insert(
        "benchmark files".to_string(),
        benchmark_fingerprint(options, dataset),
    );
    conditions.extend(device_settings.iter().cloned());
    conditions
}

/// The SHA-256 of what the run's SQL reads from this repository: the
/// benchmark file and the dataset's class names and templates, as they are
/// now (a file that is not there counts as empty). Editing the templates
/// changes the figures as surely as another model would.
fn benchmark_fingerprint(options: &SuiteOptions, dataset: &Dataset) -> String {
    use sha2::{Digest, Sha256};
    let file = format!("{}.csv", dataset.slug);
    let mut hasher = Sha256::new();
    for path in [
        options.benchmarks.join(format!("{}.sql", dataset.slug)),
        options.sqldata.join("classnames").join(&file),
        options.sqldata.join("templates").join(&file),
    ] {
        let bytes = std::fs::read(&path).unwrap_or_default();
        // Lengths first: moving bytes from one file to the next is a change.
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256 {hex}... of the .sql, class names and templates")
}

fn record_path(out: &Path, dataset: &str, model: &str) -> PathBuf {
    out.join(RUNS_FOLDER)
        .join(format!("{dataset}__{}.json", model_file_name(model)))
}

/// Save what a finished run was made with.
pub fn write_record(
    out: &Path,
    dataset: &str,
    model: &str,
    conditions: &BTreeMap<String, String>,
) -> Result<()> {
    let path = record_path(out, dataset, model);
    let text = serde_json::to_string_pretty(conditions)
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", path.display())))?;
    std::fs::write(&path, text).map_err(|e| io_error(&path, e))
}

/// Forget a run's record (its results are being replaced).
pub fn remove_record(out: &Path, dataset: &str, model: &str) -> Result<()> {
    let path = record_path(out, dataset, model);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(&path, e)),
        _ => Ok(()),
    }
}

/// What a kept run was made with; `None` when it has no record (made by a
/// clip-sql from before records were kept).
pub fn read_record(
    out: &Path,
    dataset: &str,
    model: &str,
) -> Result<Option<BTreeMap<String, String>>> {
    let path = record_path(out, dataset, model);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", path.display())))
}

/// The first condition in which `recorded` and `wanted` differ: (name,
/// recorded value, wanted value).
pub fn first_difference(
    recorded: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Option<(String, String, String)> {
    let missing = || "(not recorded)".to_string();
    wanted.iter().find_map(|(name, value)| {
        let was = recorded.get(name).cloned().unwrap_or_else(missing);
        (was != *value).then(|| (name.clone(), was, value.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::options::ExistingResults;

    #[test]
    fn editing_a_datasets_templates_changes_its_conditions() {
        let dir = tempfile::tempdir().unwrap();
        let (benchmarks, sqldata) = (dir.path().join("benchmarks"), dir.path().join("data"));
        std::fs::create_dir_all(&benchmarks).unwrap();
        std::fs::create_dir_all(sqldata.join("templates")).unwrap();
        std::fs::write(benchmarks.join("cifar10.sql"), "SELECT 1;").unwrap();
        let templates = sqldata.join("templates").join("cifar10.csv");
        std::fs::write(&templates, "template\na photo of a {}.\n").unwrap();
        let options = SuiteOptions {
            models: vec!["RN50".to_string()],
            sources: BTreeMap::new(),
            datasets: None,
            limit: Some(500),
            data: BTreeMap::new(),
            ensemble: None,
            efficiency: None,
            out: dir.path().join("results"),
            benchmarks,
            sqldata,
            existing: ExistingResults::Resume,
        };
        let dataset = Dataset {
            slug: "cifar10".to_string(),
            name: "CIFAR-10".to_string(),
            clip_benchmark: "wds/vtab/cifar10".to_string(),
            has_default_data: true,
            task: "general objects".to_string(),
        };
        let before = run_conditions(&options, &dataset, "RN50", &[]);
        assert_eq!(before["limit"], "500 images per run");
        assert_eq!(before, run_conditions(&options, &dataset, "RN50", &[]));
        std::fs::write(&templates, "template\na blurry photo of a {}.\n").unwrap();
        let after = run_conditions(&options, &dataset, "RN50", &[]);
        assert_eq!(
            first_difference(&before, &after).map(|d| d.0),
            Some("benchmark files".to_string())
        );
    }

    #[test]
    fn the_first_differing_condition_is_named() {
        let wanted: BTreeMap<String, String> = [("data", "a/"), ("limit", "500 images per run")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        assert_eq!(first_difference(&wanted, &wanted), None);
        let mut recorded = wanted.clone();
        recorded.insert("limit".to_string(), "none (every test image)".to_string());
        assert_eq!(
            first_difference(&recorded, &wanted),
            Some((
                "limit".to_string(),
                "none (every test image)".to_string(),
                "500 images per run".to_string()
            ))
        );
        recorded.remove("data");
        assert_eq!(
            first_difference(&recorded, &wanted).map(|d| d.1),
            Some("(not recorded)".to_string())
        );
    }
}
