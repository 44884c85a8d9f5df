//! Results in CLIP_benchmark's JSON shape, one file per (dataset, model),
//! named as its `clip_benchmark eval` names them, so that
//! `clip_benchmark build results/clip_benchmark/*.json` (and anything else
//! that reads its results) takes ours unchanged:
//!
//! ```json
//! {"dataset": "wds/vtab/cifar10", "model": "ViT-B-32", "pretrained": "openai",
//!  "task": "zeroshot_classification", "language": "en",
//!  "metrics": {"acc1": 0.8983, "acc5": 0.9961, "mean_per_class_recall": 0.8984}}
//! ```
//!
//! Metrics are fractions, as CLIP_benchmark writes them. Where a dataset
//! has fewer than 5 classes CLIP_benchmark writes `NaN` for acc5, which is
//! not JSON; we write `null`.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::files::file_name_part;
use clip_model::find_known;

/// One (model, dataset) result: its task and metrics as CLIP_benchmark
/// names them (fractions).
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    pub model: String,
    pub dataset: String,
    /// `zeroshot_classification` or `zeroshot_retrieval`.
    pub task: &'static str,
    /// `{"acc1": .., "acc5": .., "mean_per_class_recall": ..}`, or
    /// `{"image_retrieval_recall@1": .., ...}`.
    pub metrics: serde_json::Value,
}

/// How CLIP_benchmark (open_clip) names a model: `(model, pretrained)`.
/// OpenAI's checkpoints are open_clip's architecture name with the
/// `openai` weights; a local directory or hub repository keeps its own
/// name, with `local` or `hf-hub` as the weights.
pub fn open_clip_name(model: &str) -> (String, String) {
    if let Some(known) = find_known(model) {
        let name = known.name.replace("@336px", "-336").replace('/', "-");
        return (name, "openai".to_string());
    }
    if let Some(repo) = model.strip_prefix("hf:") {
        return (repo.to_string(), "hf-hub".to_string());
    }
    let base = Path::new(model.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| model.to_string());
    (base, "local".to_string())
}

/// The JSON document for one row; `clip_benchmark_dataset` is the name
/// CLIP_benchmark gives the dataset.
pub fn result_json(metrics: &Metrics, clip_benchmark_dataset: &str) -> serde_json::Value {
    let (model, pretrained) = open_clip_name(&metrics.model);
    json!({
        "dataset": clip_benchmark_dataset,
        "model": model,
        "pretrained": pretrained,
        "task": metrics.task,
        "metrics": metrics.metrics,
        "language": "en",
    })
}

/// CLIP_benchmark's default file name,
/// `{dataset}_{pretrained}_{model}_{language}_{task}.json`, where the
/// dataset loses its `wds/` prefix and `/` becomes `_`.
pub fn result_file_name(metrics: &Metrics, clip_benchmark_dataset: &str) -> String {
    let (model, pretrained) = open_clip_name(&metrics.model);
    let dataset = clip_benchmark_dataset
        .strip_prefix("wds/")
        .unwrap_or(clip_benchmark_dataset)
        .replace('/', "_");
    format!(
        "{}_{}_{}_en_{}.json",
        file_name_part(&dataset),
        file_name_part(&pretrained),
        file_name_part(&model),
        metrics.task
    )
}

/// Write one file per row into `dir`; `dataset_name` maps our dataset slug
/// to CLIP_benchmark's name. Returns the files written.
pub fn write_results(
    dir: &Path,
    rows: &[Metrics],
    dataset_name: impl Fn(&str) -> String,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for row in rows {
        let dataset = dataset_name(&row.dataset);
        let path = dir.join(result_file_name(row, &dataset));
        let text = serde_json::to_string_pretty(&result_json(row, &dataset))
            .map_err(std::io::Error::other)?;
        std::fs::write(&path, text + "\n")?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_models_get_open_clips_names() {
        assert_eq!(
            open_clip_name("ViT-B/32"),
            ("ViT-B-32".into(), "openai".into())
        );
        assert_eq!(
            open_clip_name("ViT-L/14@336px"),
            ("ViT-L-14-336".into(), "openai".into())
        );
        assert_eq!(open_clip_name("rn50"), ("RN50".into(), "openai".into()));
        assert_eq!(
            open_clip_name("/models/my-clip/"),
            ("my-clip".into(), "local".into())
        );
        assert_eq!(
            open_clip_name("hf:org/repo"),
            ("org/repo".into(), "hf-hub".into())
        );
    }

    #[test]
    fn the_document_and_file_name_are_clip_benchmarks() {
        let row = Metrics {
            model: "ViT-B/32".into(),
            dataset: "cifar10".into(),
            task: "zeroshot_classification",
            metrics: json!({"acc1": 0.5, "acc5": null, "mean_per_class_recall": 0.25}),
        };
        assert_eq!(
            result_json(&row, "wds/vtab/cifar10"),
            json!({"dataset": "wds/vtab/cifar10", "model": "ViT-B-32", "pretrained": "openai",
                   "task": "zeroshot_classification", "language": "en",
                   "metrics": {"acc1": 0.5, "acc5": null, "mean_per_class_recall": 0.25}})
        );
        assert_eq!(
            result_file_name(&row, "wds/vtab/cifar10"),
            "vtab_cifar10_openai_ViT-B-32_en_zeroshot_classification.json"
        );
        let retrieval = Metrics {
            model: "RN50".into(),
            dataset: "flickr30k".into(),
            task: "zeroshot_retrieval",
            metrics: json!({"image_retrieval_recall@5": 0.8}),
        };
        assert_eq!(
            result_file_name(&retrieval, "wds/flickr30k"),
            "flickr30k_openai_RN50_en_zeroshot_retrieval.json"
        );
        assert_eq!(
            result_json(&retrieval, "wds/flickr30k")["task"],
            "zeroshot_retrieval"
        );
    }
}
