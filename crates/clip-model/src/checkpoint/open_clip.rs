//! OpenAI / open_clip checkpoints, read into the same model as the Hugging
//! Face layout: `open_clip_config.json` becomes a [`ClipConfig`], and the
//! state dict of OpenAI's `model.py` (which open_clip keeps) is renamed to
//! `CLIPModel`'s tensor names.
//!
//! The differences are names plus three shape changes: attention keeps q, k
//! and v in one `in_proj_weight` (3w x w, rows in that order) that is split;
//! `visual.proj` and `text_projection` are (width x dim) matrices applied as
//! `x @ proj`, the transpose of a `Linear` weight; and `logit_scale` is a
//! scalar either way. OpenAI's ResNet image towers keep their own names
//! (`visual.layer1...`, read by [`crate::towers::resnet`]). Anything else in the
//! file (attentional pooling, layer scale, SigLIP's bias) is an architecture
//! this model does not compute, and is refused by name rather than ignored.

use std::collections::{BTreeSet, HashMap};

use candle_core::Tensor;
use serde::Deserialize;
use serde_json::Value;

use crate::config::{Activation, ClipConfig, ResNetConfig, TextConfig, VisionConfig};
use crate::error::{CheckpointError, ConfigError, without_backtrace};
use crate::image::{CLIP_MEAN, CLIP_STD};

/// `open_clip_config.json` as the hub repositories hold it.
#[derive(Debug, Deserialize)]
struct ConfigFile {
    model_cfg: ModelCfg,
    #[serde(default)]
    preprocess_cfg: Option<PreprocessCfg>,
}

#[derive(Debug, Deserialize)]
struct ModelCfg {
    embed_dim: usize,
    #[serde(default)]
    quick_gelu: bool,
    vision_cfg: VisionCfg,
    text_cfg: TextCfg,
    #[serde(default)]
    custom_text: bool,
}

fn default_width_v() -> usize {
    768
}
fn default_layers() -> Value {
    Value::from(12)
}
fn default_head_width() -> usize {
    64
}
fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_patch() -> usize {
    16
}
fn null_as_default_patch<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Ok(Option::<usize>::deserialize(d)?.unwrap_or_else(default_patch))
}
fn default_image_size() -> Value {
    Value::from(224)
}

/// open_clip's `CLIPVisionCfg`, defaults included.
#[derive(Debug, Deserialize)]
struct VisionCfg {
    /// An int for a ViT; a list of four block counts for a ResNet.
    #[serde(default = "default_layers")]
    layers: Value,
    #[serde(default = "default_width_v")]
    width: usize,
    #[serde(default = "default_head_width")]
    head_width: usize,
    #[serde(default = "default_mlp_ratio")]
    mlp_ratio: f64,
    /// `null` in ResNet configs.
    #[serde(default = "default_patch", deserialize_with = "null_as_default_patch")]
    patch_size: usize,
    /// An int, or `[height, width]`.
    #[serde(default = "default_image_size")]
    image_size: Value,
    #[serde(default)]
    ls_init_value: Option<f64>,
    #[serde(default)]
    attentional_pool: bool,
    #[serde(default)]
    pool_type: Option<String>,
    #[serde(default)]
    final_ln_after_pool: bool,
    #[serde(default)]
    no_ln_pre: bool,
    #[serde(default)]
    timm_model_name: Option<String>,
}

fn default_context() -> usize {
    77
}
fn default_vocab() -> usize {
    49408
}
fn default_width_t() -> usize {
    512
}
fn default_heads_t() -> usize {
    8
}
fn default_layers_t() -> usize {
    12
}

/// open_clip's `CLIPTextCfg`, defaults included.
#[derive(Debug, Deserialize)]
struct TextCfg {
    #[serde(default = "default_context")]
    context_length: usize,
    #[serde(default = "default_vocab")]
    vocab_size: usize,
    #[serde(default = "default_width_t")]
    width: usize,
    #[serde(default = "default_heads_t")]
    heads: usize,
    #[serde(default = "default_layers_t")]
    layers: usize,
    #[serde(default = "default_mlp_ratio")]
    mlp_ratio: f64,
    #[serde(default)]
    ls_init_value: Option<f64>,
    #[serde(default)]
    hf_model_name: Option<String>,
    #[serde(default)]
    pool_type: Option<String>,
    #[serde(default)]
    proj_bias: bool,
    #[serde(default)]
    embed_cls: bool,
    #[serde(default)]
    no_causal_mask: bool,
    #[serde(default)]
    final_ln_after_pool: bool,
}

#[derive(Debug, Deserialize)]
struct PreprocessCfg {
    #[serde(default)]
    mean: Option<Vec<f64>>,
    #[serde(default)]
    std: Option<Vec<f64>>,
    #[serde(default)]
    interpolation: Option<String>,
    #[serde(default)]
    resize_mode: Option<String>,
}

/// Read `open_clip_config.json` into the architecture it describes, or say
/// which part of it this version cannot compute.
pub fn config_from_json(text: &str) -> Result<ClipConfig, ConfigError> {
    let file: ConfigFile = serde_json::from_str(text).map_err(|source| ConfigError::Malformed {
        what: "an open_clip config",
        source,
    })?;
    let m = file.model_cfg;
    let v = &m.vision_cfg;
    let t = &m.text_cfg;
    let unsupported = |feature: &str| {
        Err(ConfigError::UnsupportedArchitecture {
            feature: feature.to_string(),
        })
    };
    if let Some(name) = &v.timm_model_name {
        return unsupported(&format!("a timm image tower ({name})"));
    }
    if let Some(name) = &t.hf_model_name {
        return unsupported(&format!("a Hugging Face text tower ({name})"));
    }
    if m.custom_text {
        return unsupported("a custom text tower (custom_text)");
    }
    if v.ls_init_value.is_some() || t.ls_init_value.is_some() {
        return unsupported("layer scale (ls_init_value)");
    }
    if v.attentional_pool {
        return unsupported("attentional pooling");
    }
    if v.pool_type.as_deref().is_some_and(|p| p != "tok") {
        return unsupported("vision pool_type other than 'tok'");
    }
    if t.pool_type.as_deref().is_some_and(|p| p != "argmax") {
        return unsupported("text pool_type other than 'argmax'");
    }
    if v.final_ln_after_pool || t.final_ln_after_pool {
        return unsupported("final_ln_after_pool");
    }
    if v.no_ln_pre {
        return unsupported("no_ln_pre");
    }
    if t.proj_bias || t.embed_cls || t.no_causal_mask {
        return unsupported("a text tower variant (proj_bias, embed_cls or no_causal_mask)");
    }
    if let Some(p) = &file.preprocess_cfg {
        check_preprocess(p)?;
    }
    let image_size = square_image_size(&v.image_size)?;
    if v.head_width == 0 {
        return Err(ConfigError::Inconsistent(
            "vision head_width is 0".to_string(),
        ));
    }
    // A list of four block counts is OpenAI's ModifiedResNet.
    let resnet = match v.layers.as_array() {
        Some(list) => {
            let counts: Vec<usize> = list
                .iter()
                .map(|n| n.as_u64().map(|n| n as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    ConfigError::Inconsistent(format!(
                        "vision_cfg.layers is {}, not block counts",
                        v.layers
                    ))
                })?;
            let layers: [usize; 4] = counts.try_into().map_err(|_| {
                ConfigError::Inconsistent(format!(
                    "vision_cfg.layers is {}: a ResNet has four stages",
                    v.layers
                ))
            })?;
            Some(ResNetConfig {
                layers,
                width: v.width,
                heads: v.width * 32 / v.head_width,
            })
        }
        None => None,
    };
    let layers = match &resnet {
        Some(r) => r.layers.iter().sum(),
        None => v.layers.as_u64().ok_or_else(|| {
            ConfigError::Inconsistent(format!(
                "vision_cfg.layers is {}, not a layer count",
                v.layers
            ))
        })? as usize,
    };
    // For a ResNet the ViT fields only carry the input size (and a width
    // and head count that pass validation).
    let (vision_width, vision_heads, patch_size) = match &resnet {
        Some(r) => (r.embed_width(), r.heads, 32),
        None => {
            if !v.width.is_multiple_of(v.head_width) {
                return Err(ConfigError::Inconsistent(format!(
                    "vision width {} is not a multiple of head_width {}",
                    v.width, v.head_width
                )));
            }
            (v.width, v.width / v.head_width, v.patch_size)
        }
    };
    let activation = if m.quick_gelu {
        Activation::QuickGelu
    } else {
        // open_clip's default act_layer is torch's exact GELU.
        Activation::Gelu
    };
    Ok(ClipConfig {
        text_config: TextConfig {
            vocab_size: t.vocab_size,
            hidden_size: t.width,
            intermediate_size: mlp_width(t.width, t.mlp_ratio)?,
            num_hidden_layers: t.layers,
            num_attention_heads: t.heads,
            max_position_embeddings: t.context_length,
            hidden_act: activation,
            layer_norm_eps: 1e-5,
        },
        vision_config: VisionConfig {
            hidden_size: vision_width,
            intermediate_size: mlp_width(vision_width, v.mlp_ratio)?,
            num_hidden_layers: layers,
            num_attention_heads: vision_heads,
            image_size,
            patch_size,
            num_channels: 3,
            hidden_act: activation,
            layer_norm_eps: 1e-5,
        },
        projection_dim: m.embed_dim,
        logit_scale_init_value: (1.0f64 / 0.07).ln(),
        resnet,
    })
}

fn square_image_size(value: &Value) -> Result<usize, ConfigError> {
    if let Some(n) = value.as_u64() {
        return Ok(n as usize);
    }
    if let Some([h, w]) = value.as_array().map(Vec::as_slice)
        && let (Some(h), Some(w)) = (h.as_u64(), w.as_u64())
    {
        if h == w {
            return Ok(h as usize);
        }
        return Err(ConfigError::Inconsistent(format!(
            "vision_cfg.image_size is {h}x{w}; only square inputs are supported"
        )));
    }
    Err(ConfigError::Inconsistent(format!(
        "vision_cfg.image_size is {value}, not a size"
    )))
}

fn mlp_width(width: usize, ratio: f64) -> Result<usize, ConfigError> {
    let hidden = width as f64 * ratio;
    if hidden.fract() != 0.0 || hidden <= 0.0 {
        return Err(ConfigError::Inconsistent(format!(
            "mlp_ratio {ratio} of width {width} is not a whole width"
        )));
    }
    Ok(hidden as usize)
}

/// The preprocessing must be CLIP's, or the pixels we compute are not the
/// ones the weights expect.
fn check_preprocess(p: &PreprocessCfg) -> Result<(), ConfigError> {
    let close = |given: &Option<Vec<f64>>, ours: [f32; 3]| {
        given.as_ref().is_none_or(|g| {
            g.len() == 3
                && g.iter()
                    .zip(ours)
                    .all(|(a, b)| (a - f64::from(b)).abs() < 1e-6)
        })
    };
    if !close(&p.mean, CLIP_MEAN) || !close(&p.std, CLIP_STD) {
        return Err(ConfigError::UnsupportedPreprocessing(format!(
            "this model normalises images with mean {:?} and std {:?}; only CLIP's \
             ({CLIP_MEAN:?}, {CLIP_STD:?}) is supported",
            p.mean, p.std
        )));
    }
    if p.interpolation.as_deref().is_some_and(|i| i != "bicubic") {
        return Err(ConfigError::UnsupportedPreprocessing(format!(
            "this model resizes with '{}' interpolation; only bicubic is supported",
            p.interpolation.as_deref().unwrap_or_default()
        )));
    }
    if p.resize_mode.as_deref().is_some_and(|r| r != "shortest") {
        return Err(ConfigError::UnsupportedPreprocessing(format!(
            "this model resizes with mode '{}'; only 'shortest' (short side, centre crop) \
             is supported",
            p.resize_mode.as_deref().unwrap_or_default()
        )));
    }
    Ok(())
}

/// Tensors an OpenAI/open_clip state dict may hold that the model does not
/// read: buffers and bookkeeping, not weights.
const IGNORED: &[&str] = &[
    "attn_mask",
    "input_resolution",
    "context_length",
    "vocab_size",
    // BatchNorm's training step counter.
    "num_batches_tracked",
];

/// Rename an OpenAI/open_clip state dict to `CLIPModel`'s tensor names.
/// Fails on a missing tensor or one it does not know, naming it.
pub fn to_hugging_face_names(
    tensors: HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>, CheckpointError> {
    // Checkpoints saved from a wrapped model prefix every name.
    let mut source: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("module.").map(str::to_string).unwrap_or(k),
                v,
            )
        })
        .collect();
    if source.contains_key("logit_bias") {
        return Err(CheckpointError::SigLip);
    }
    // OpenAI's ModifiedResNet keeps its own names (read by `resnet.rs`).
    let resnet_tensors: Option<Vec<String>> = source
        .keys()
        .any(|k| k.starts_with("visual.layer1."))
        .then(|| {
            source
                .keys()
                .filter(|k| k.starts_with("visual.") && !k.ends_with("num_batches_tracked"))
                .cloned()
                .collect()
        });
    // open_clip models built with a Linear text projection store it as one.
    let linear_text_projection = source.contains_key("text_projection.weight");
    let mut out = HashMap::new();
    let mut take = |from: &str, to: &str, transpose: bool| -> Result<(), CheckpointError> {
        let t = source
            .remove(from)
            .ok_or_else(|| CheckpointError::MissingTensor(from.to_string()))?;
        let t = if transpose {
            t.t()
                .and_then(|t| t.contiguous())
                .map_err(|source| CheckpointError::Tensor {
                    context: from.to_string(),
                    source: Box::new(without_backtrace(source)),
                })?
        } else {
            t
        };
        out.insert(to.to_string(), t);
        Ok(())
    };
    take("logit_scale", "logit_scale", false)?;
    // Text tower.
    for p in ["weight", "bias"] {
        take(
            &format!("ln_final.{p}"),
            &format!("text_model.final_layer_norm.{p}"),
            false,
        )?;
    }
    take(
        "token_embedding.weight",
        "text_model.embeddings.token_embedding.weight",
        false,
    )?;
    take(
        "positional_embedding",
        "text_model.embeddings.position_embedding.weight",
        false,
    )?;
    if linear_text_projection {
        take("text_projection.weight", "text_projection.weight", false)?;
    } else {
        take("text_projection", "text_projection.weight", true)?;
    }
    // Image tower.
    if let Some(visual) = resnet_tensors {
        for name in visual {
            take(&name, &name, false)?;
        }
    } else {
        take(
            "visual.class_embedding",
            "vision_model.embeddings.class_embedding",
            false,
        )?;
        take(
            "visual.positional_embedding",
            "vision_model.embeddings.position_embedding.weight",
            false,
        )?;
        take(
            "visual.conv1.weight",
            "vision_model.embeddings.patch_embedding.weight",
            false,
        )?;
        for p in ["weight", "bias"] {
            take(
                &format!("visual.ln_pre.{p}"),
                &format!("vision_model.pre_layrnorm.{p}"),
                false,
            )?;
            take(
                &format!("visual.ln_post.{p}"),
                &format!("vision_model.post_layernorm.{p}"),
                false,
            )?;
        }
        take("visual.proj", "visual_projection.weight", true)?;
    }
    for (from, to) in [
        ("visual.transformer", "vision_model.encoder"),
        ("transformer", "text_model.encoder"),
    ] {
        let blocks = block_indices(&source, &format!("{from}.resblocks."));
        for i in blocks {
            let src = format!("{from}.resblocks.{i}");
            let dst = format!("{to}.layers.{i}");
            rename_block(&mut source, &mut out, &src, &dst)?;
        }
    }
    let unknown: BTreeSet<&String> = source
        .keys()
        .filter(|k| !IGNORED.iter().any(|i| k.ends_with(i)))
        .collect();
    if !unknown.is_empty() {
        let mut names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        let more = names.len().saturating_sub(5);
        names.truncate(5);
        return Err(CheckpointError::UnknownTensors {
            names: format!(
                "{}{}",
                names.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ),
        });
    }
    Ok(out)
}

/// The block numbers present under `prefix` (`...resblocks.`), sorted.
fn block_indices(source: &HashMap<String, Tensor>, prefix: &str) -> BTreeSet<usize> {
    source
        .keys()
        .filter_map(|k| k.strip_prefix(prefix))
        .filter_map(|rest| rest.split('.').next()?.parse().ok())
        .collect()
}

/// One residual attention block: `ln_1, attn.{in_proj_*, out_proj}, ln_2,
/// mlp.{c_fc, c_proj}` -> `layer_norm1, self_attn.{q,k,v,out}_proj,
/// layer_norm2, mlp.{fc1, fc2}`.
fn rename_block(
    source: &mut HashMap<String, Tensor>,
    out: &mut HashMap<String, Tensor>,
    src: &str,
    dst: &str,
) -> Result<(), CheckpointError> {
    let mut take = |name: &str| {
        source
            .remove(&format!("{src}.{name}"))
            .ok_or_else(|| CheckpointError::MissingTensor(format!("{src}.{name}")))
    };
    for p in ["weight", "bias"] {
        out.insert(
            format!("{dst}.layer_norm1.{p}"),
            take(&format!("ln_1.{p}"))?,
        );
        out.insert(
            format!("{dst}.layer_norm2.{p}"),
            take(&format!("ln_2.{p}"))?,
        );
        out.insert(
            format!("{dst}.mlp.fc1.{p}"),
            take(&format!("mlp.c_fc.{p}"))?,
        );
        out.insert(
            format!("{dst}.mlp.fc2.{p}"),
            take(&format!("mlp.c_proj.{p}"))?,
        );
        out.insert(
            format!("{dst}.self_attn.out_proj.{p}"),
            take(&format!("attn.out_proj.{p}"))?,
        );
        let packed = take(&format!("attn.in_proj_{p}"))?;
        let tensor = format!("{src}.attn.in_proj_{p}");
        let rows = packed.dim(0).map_err(|source| CheckpointError::Tensor {
            context: tensor.clone(),
            source: Box::new(without_backtrace(source)),
        })?;
        if rows % 3 != 0 {
            return Err(CheckpointError::PackedProjection { tensor, rows });
        }
        let width = rows / 3;
        for (i, name) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
            let part = packed
                .narrow(0, i * width, width)
                .and_then(|t| t.contiguous())
                .map_err(|source| CheckpointError::Tensor {
                    context: format!("{src}.attn.in_proj_{p}"),
                    source: Box::new(without_backtrace(source)),
                })?;
            out.insert(format!("{dst}.self_attn.{name}.{p}"), part);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timm_openai_vit_b_32_config_reads_as_vit_b_32() {
        let json = r#"{"model_cfg": {"embed_dim": 512, "quick_gelu": true,
            "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}},
            "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                               "std": [0.26862954, 0.26130258, 0.27577711]}}"#;
        let mut expected = crate::registry::find_known("ViT-B/32").unwrap().config();
        expected.logit_scale_init_value = (1.0f64 / 0.07).ln();
        assert_eq!(config_from_json(json).unwrap(), expected);
    }

    #[test]
    fn resnet_configs_read_and_other_variants_are_refused_by_name() {
        let rn50 = r#"{"model_cfg": {"embed_dim": 1024, "quick_gelu": true,
            "vision_cfg": {"image_size": 224, "layers": [3, 4, 6, 3], "width": 64},
            "text_cfg": {}}}"#;
        let rn50 = config_from_json(rn50).unwrap();
        assert_eq!(
            rn50.resnet,
            Some(ResNetConfig {
                layers: [3, 4, 6, 3],
                width: 64,
                heads: 32
            })
        );
        assert_eq!(rn50.vision_config.image_size, 224);
        let siglip_like = r#"{"model_cfg": {"embed_dim": 768,
            "vision_cfg": {"timm_model_name": "vit_base_patch16_siglip_224"}, "text_cfg": {}}}"#;
        assert!(
            config_from_json(siglip_like)
                .unwrap_err()
                .to_string()
                .contains("timm")
        );
        let other_norm = r#"{"model_cfg": {"embed_dim": 512, "vision_cfg": {}, "text_cfg": {}},
            "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}"#;
        assert!(
            config_from_json(other_norm)
                .unwrap_err()
                .to_string()
                .contains("mean")
        );
    }

    /// A one-block state dict of width 2 in OpenAI's names.
    fn minimal_state_dict() -> HashMap<String, Tensor> {
        use candle_core::{DType, Device};
        let dev = Device::Cpu;
        let w = 2;
        let mut sd = HashMap::new();
        let ones = |shape: &[usize]| Tensor::ones(shape, DType::F32, &dev).unwrap();
        sd.insert("logit_scale".into(), ones(&[]));
        for k in [
            "visual.class_embedding",
            "visual.ln_pre.weight",
            "visual.ln_pre.bias",
            "visual.ln_post.weight",
            "visual.ln_post.bias",
            "ln_final.weight",
            "ln_final.bias",
        ] {
            sd.insert(k.to_string(), ones(&[w]));
        }
        sd.insert("visual.positional_embedding".into(), ones(&[2, w]));
        sd.insert("visual.conv1.weight".into(), ones(&[w, 3, 1, 1]));
        sd.insert(
            "visual.proj".into(),
            Tensor::arange(0f32, 6., &dev)
                .unwrap()
                .reshape((w, 3))
                .unwrap(),
        );
        sd.insert("token_embedding.weight".into(), ones(&[5, w]));
        sd.insert("positional_embedding".into(), ones(&[3, w]));
        sd.insert("text_projection".into(), ones(&[w, 3]));
        sd.insert("attn_mask".into(), ones(&[3, 3]));
        for tower in ["visual.transformer", "transformer"] {
            let b = format!("{tower}.resblocks.0");
            for p in ["weight", "bias"] {
                for n in ["ln_1", "ln_2", "mlp.c_fc", "mlp.c_proj", "attn.out_proj"] {
                    sd.insert(format!("{b}.{n}.{p}"), ones(&[w]));
                }
            }
            sd.insert(
                format!("{b}.attn.in_proj_weight"),
                Tensor::arange(0f32, 12., &dev)
                    .unwrap()
                    .reshape((3 * w, w))
                    .unwrap(),
            );
            sd.insert(
                format!("{b}.attn.in_proj_bias"),
                Tensor::arange(0f32, 6., &dev).unwrap(),
            );
        }
        sd
    }

    #[test]
    fn in_proj_is_split_into_q_k_v_and_projections_transposed() {
        let out = to_hugging_face_names(minimal_state_dict()).unwrap();
        let k = &out["vision_model.encoder.layers.0.self_attn.k_proj.weight"];
        assert_eq!(
            k.to_vec2::<f32>().unwrap(),
            vec![vec![4., 5.], vec![6., 7.]]
        );
        let v_bias = &out["text_model.encoder.layers.0.self_attn.v_proj.bias"];
        assert_eq!(v_bias.to_vec1::<f32>().unwrap(), vec![4., 5.]);
        let proj = &out["visual_projection.weight"];
        assert_eq!(
            proj.to_vec2::<f32>().unwrap(),
            vec![vec![0., 3.], vec![1., 4.], vec![2., 5.]]
        );
        assert!(!out.contains_key("attn_mask"));
    }

    #[test]
    fn unknown_and_missing_tensors_are_named() {
        let mut sd = minimal_state_dict();
        let extra = sd["logit_scale"].clone();
        sd.insert("visual.attn_pool.query".to_string(), extra);
        let err = to_hugging_face_names(sd).unwrap_err().to_string();
        assert!(err.contains("visual.attn_pool.query"), "{err}");

        let mut sd = minimal_state_dict();
        sd.remove("transformer.resblocks.0.ln_2.bias");
        let err = to_hugging_face_names(sd).unwrap_err().to_string();
        assert!(err.contains("transformer.resblocks.0.ln_2.bias"), "{err}");
    }
}
