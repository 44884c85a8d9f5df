//! Zero-shot classifiers: one normalised text embedding per label, built
//! once per (model, labels, templates) and cached for the process.
//!
//! As in the CLIP paper: every label is written into every template, the
//! prompts' embeddings are normalised, averaged per label and normalised
//! again. Scoring an image is then one matrix product.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use candle_core::{Device, Tensor};

use super::encode::embed_texts;
use super::error::EngineError;
use super::model_cache::LoadedModel;
use clip_model::embed::normalize_in_place;

/// The template used when a query gives none.
pub const DEFAULT_TEMPLATE: &str = "a photo of a {}.";

/// Label embeddings of one (model, labels, templates).
#[derive(Debug)]
pub struct Classifier {
    pub labels: Vec<String>,
    /// (labels x dim), row-major, rows normalised.
    pub weights: Vec<f32>,
    pub dim: usize,
    /// `exp(logit_scale)` of the model.
    pub logit_scale: f32,
}

/// One image's zero-shot result.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub label_index: usize,
    pub probability: f32,
    /// Up to five label indices, most probable first.
    pub top5: Vec<usize>,
    /// Softmax over all labels.
    pub probabilities: Vec<f32>,
}

impl Classifier {
    /// Classify normalised image embeddings (rows x dim, row-major).
    pub fn predict(&self, embeddings: &[f32]) -> Result<Vec<Prediction>, EngineError> {
        let n = embeddings.len() / self.dim.max(1);
        let l = self.labels.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let logits = (|| -> candle_core::Result<Vec<f32>> {
            let e = Tensor::from_slice(embeddings, (n, self.dim), &Device::Cpu)?;
            let w = Tensor::from_slice(&self.weights, (l, self.dim), &Device::Cpu)?;
            (e.matmul(&w.t()?)? * f64::from(self.logit_scale))?
                .flatten_all()?
                .to_vec1()
        })()
        .map_err(EngineError::Scoring)?;
        Ok(logits.chunks_exact(l).map(prediction_from_logits).collect())
    }
}

fn prediction_from_logits(logits: &[f32]) -> Prediction {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let probabilities: Vec<f32> = exps.iter().map(|&e| e / sum).collect();
    // Ties resolve to the lower index, as argmax does.
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let label_index = order.first().copied().unwrap_or(0);
    Prediction {
        label_index,
        probability: probabilities.get(label_index).copied().unwrap_or(0.0),
        top5: order.into_iter().take(5).collect(),
        probabilities,
    }
}

/// Write `label` into `template` at every `{}` / `{c}` placeholder.
pub fn format_prompt(template: &str, label: &str) -> String {
    template.replace("{c}", label).replace("{}", label)
}

/// Check templates before any work: each needs a placeholder, or every
/// label would get the same prompt and the classifier would be constant.
pub fn validate_templates(templates: &[String]) -> Result<(), EngineError> {
    if templates.is_empty() {
        return Err(EngineError::NoTemplates);
    }
    match templates
        .iter()
        .find(|t| !t.contains("{}") && !t.contains("{c}"))
    {
        Some(t) => Err(EngineError::TemplateWithoutPlaceholder(t.clone())),
        None => Ok(()),
    }
}

type Key = (String, Vec<String>, Vec<String>);
type Slot = Arc<Mutex<Option<Arc<Classifier>>>>;

/// Classifiers kept; a workload uses a handful (one per dataset and model).
const MAX_CACHED: usize = 64;

static CLASSIFIERS: LazyLock<Mutex<HashMap<Key, Slot>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The classifier for (model, labels, templates), computed on first use.
/// Partitions asking for the same one at once wait for a single computation.
pub fn classifier(
    model: &LoadedModel,
    labels: &[String],
    templates: &[String],
    batch_size: usize,
) -> Result<Arc<Classifier>, EngineError> {
    if labels.is_empty() {
        return Err(EngineError::NoLabels);
    }
    validate_templates(templates)?;
    let key: Key = (model.key.clone(), labels.to_vec(), templates.to_vec());
    let slot = {
        let mut map = CLASSIFIERS
            .lock()
            .map_err(|_| EngineError::Poisoned("classifier cache"))?;
        if map.len() >= MAX_CACHED && !map.contains_key(&key) {
            map.clear();
        }
        Arc::clone(map.entry(key).or_default())
    };
    let mut guard = super::worker::wait_off_runtime(|| slot.lock())
        .map_err(|_| EngineError::Poisoned("classifier slot"))?;
    if let Some(c) = guard.as_ref() {
        return Ok(Arc::clone(c));
    }
    let built = Arc::new(build(model, labels, templates, batch_size)?);
    *guard = Some(Arc::clone(&built));
    Ok(built)
}

/// Prompts embedded at a time while building a classifier: the memory of
/// a build is the classifier itself plus this many embeddings, however many
/// labels and templates there are (100,000 labels x 80 templates would
/// otherwise hold 8 million embeddings at once).
const PROMPTS_PER_STEP: usize = 4096;

fn build(
    model: &LoadedModel,
    labels: &[String],
    templates: &[String],
    batch_size: usize,
) -> Result<Classifier, EngineError> {
    let dim = model.embed_dim;
    let mut weights = vec![0f32; labels.len() * dim];
    let labels_per_step = (PROMPTS_PER_STEP / templates.len()).max(1);
    for (step, step_labels) in labels.chunks(labels_per_step).enumerate() {
        let prompts: Vec<String> = step_labels
            .iter()
            .flat_map(|label| templates.iter().map(move |t| format_prompt(t, label)))
            .collect();
        let embeddings = embed_texts(model, &prompts, batch_size)?;
        let first_label = step * labels_per_step;
        for (i, per_label) in embeddings.chunks(templates.len()).enumerate() {
            let label = first_label + i;
            let row = &mut weights[label * dim..(label + 1) * dim];
            for e in per_label {
                row.iter_mut().zip(e).for_each(|(w, x)| *w += x);
            }
            row.iter_mut().for_each(|w| *w /= templates.len() as f32);
            normalize_in_place(row);
        }
    }
    Ok(Classifier {
        labels: labels.to_vec(),
        weights,
        dim,
        logit_scale: model.logit_scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_fill_both_placeholder_styles() {
        assert_eq!(
            format_prompt("a photo of a {}.", "cat"),
            "a photo of a cat."
        );
        assert_eq!(
            format_prompt("a {c} in the wild", "dog"),
            "a dog in the wild"
        );
    }

    #[test]
    fn templates_without_placeholder_are_refused() {
        let err = validate_templates(&["a photo".to_string()]).unwrap_err();
        assert!(err.to_string().contains("placeholder"), "{err}");
        assert!(matches!(
            validate_templates(&[]),
            Err(EngineError::NoTemplates)
        ));
    }

    #[test]
    fn prediction_ranks_by_logit_and_ties_go_low() {
        let p = prediction_from_logits(&[1.0, 3.0, 3.0, -1.0, 0.0, 2.0, 0.5]);
        assert_eq!(p.label_index, 1);
        assert_eq!(p.top5, vec![1, 2, 5, 0, 6]);
        let total: f32 = p.probabilities.iter().sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!((p.probability - p.probabilities[1]).abs() < 1e-7);
    }
}
