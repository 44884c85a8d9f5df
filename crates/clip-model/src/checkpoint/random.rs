//! Random-weight CLIP models, written to a directory in the layout their
//! published weights use — ViTs as Hugging Face's `CLIPModel`
//! (`config.json` + `model.safetensors`), ResNets as open_clip's
//! (`open_clip_config.json` + `open_clip_model.safetensors`) — and loaded
//! back through the same loader as real checkpoints. Tests, benchmarks and examples use
//! them where pretrained weights cannot be downloaded; the values are
//! deterministic for a seed, so results are reproducible.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::config::{ClipConfig, ResNetConfig};
use crate::error::{ModelError, without_backtrace};

/// A candle failure while building tensor `name`.
fn tensor_error(name: &str) -> impl FnOnce(candle_core::Error) -> ModelError + '_ {
    move |source| ModelError::Tensor {
        context: format!("cannot build random tensor {name}"),
        source: Box::new(without_backtrace(source)),
    }
}

/// SplitMix64 with Box–Muller: a seedable normal sampler, so the same seed
/// gives the same model on every machine.
struct Normal {
    state: u64,
}

impl Normal {
    fn new(seed: u64) -> Self {
        Self {
            state: seed ^ 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        // 53 random bits in (0, 1].
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    fn sample(&mut self, std: f64) -> f32 {
        let (u1, u2) = (self.uniform(), self.uniform());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
    }
}

struct Writer {
    rng: Normal,
    tensors: HashMap<String, Tensor>,
}

impl Writer {
    /// Check the config and create `dir`, for a model seeded with `seed`.
    fn start(dir: &Path, config: &ClipConfig, seed: u64) -> Result<Writer, ModelError> {
        config.validate().map_err(|source| ModelError::Config {
            path: dir.to_path_buf(),
            source,
        })?;
        std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
            action: "create",
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Writer {
            rng: Normal::new(seed),
            tensors: HashMap::new(),
        })
    }

    /// Add `logit_scale` = ln(100), the value trained checkpoints reach (so
    /// probabilities look like real ones), and write the tensors to
    /// `dir/weights_file` and `config` to `dir/config_file`.
    fn finish(
        mut self,
        dir: &Path,
        weights_file: &str,
        config_file: &str,
        config: &serde_json::Value,
    ) -> Result<(), ModelError> {
        let logit_scale =
            Tensor::new(100f32.ln(), &Device::Cpu).map_err(tensor_error("logit_scale"))?;
        self.tensors.insert("logit_scale".into(), logit_scale);
        let weights = dir.join(weights_file);
        candle_core::safetensors::save(&self.tensors, &weights).map_err(|source| {
            ModelError::Tensor {
                context: format!("cannot write {}", weights.display()),
                source: Box::new(without_backtrace(source)),
            }
        })?;
        let config_path = dir.join(config_file);
        // A `Value` always serialises.
        let text = config.to_string();
        std::fs::write(&config_path, text).map_err(|source| ModelError::Io {
            action: "write",
            path: config_path,
            source,
        })
    }

    fn normal(&mut self, name: String, shape: &[usize], std: f64) -> Result<(), ModelError> {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| self.rng.sample(std)).collect();
        let t = Tensor::from_vec(values, shape, &Device::Cpu).map_err(tensor_error(&name))?;
        self.tensors.insert(name, t);
        Ok(())
    }

    fn constant_plus_noise(
        &mut self,
        name: String,
        n: usize,
        value: f32,
        std: f64,
    ) -> Result<(), ModelError> {
        let values: Vec<f32> = (0..n).map(|_| value + self.rng.sample(std)).collect();
        let t = Tensor::from_vec(values, n, &Device::Cpu).map_err(tensor_error(&name))?;
        self.tensors.insert(name, t);
        Ok(())
    }

    fn layer_norm(&mut self, prefix: &str, width: usize) -> Result<(), ModelError> {
        self.constant_plus_noise(format!("{prefix}.weight"), width, 1.0, 0.05)?;
        self.constant_plus_noise(format!("{prefix}.bias"), width, 0.0, 0.02)
    }

    fn linear(
        &mut self,
        prefix: &str,
        out: usize,
        inp: usize,
        bias: bool,
    ) -> Result<(), ModelError> {
        self.normal(
            format!("{prefix}.weight"),
            &[out, inp],
            (inp as f64).powf(-0.5),
        )?;
        if bias {
            self.normal(format!("{prefix}.bias"), &[out], 0.02)?;
        }
        Ok(())
    }

    fn encoder(
        &mut self,
        prefix: &str,
        width: usize,
        intermediate: usize,
        layers: usize,
    ) -> Result<(), ModelError> {
        for i in 0..layers {
            let p = format!("{prefix}.layers.{i}");
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                self.linear(&format!("{p}.self_attn.{proj}"), width, width, true)?;
            }
            self.layer_norm(&format!("{p}.layer_norm1"), width)?;
            self.linear(&format!("{p}.mlp.fc1"), intermediate, width, true)?;
            self.linear(&format!("{p}.mlp.fc2"), width, intermediate, true)?;
            self.layer_norm(&format!("{p}.layer_norm2"), width)?;
        }
        Ok(())
    }
}

/// Write a random CLIP model with `config`'s shapes to `dir` (created if
/// needed), in the layout the family's published weights use: a ViT as
/// `CLIPModel.save_pretrained` lays it out (`config.json` +
/// `model.safetensors`), a ResNet (`config.resnet` set) as open_clip's hub
/// upload does (`open_clip_config.json` + `open_clip_model.safetensors`,
/// OpenAI's tensor names). `logit_scale` is ln(100), the value trained
/// checkpoints reach, so probabilities look like real ones.
pub fn write_random_model(dir: &Path, config: &ClipConfig, seed: u64) -> Result<(), ModelError> {
    match &config.resnet {
        Some(resnet) => write_random_resnet(dir, config, resnet, seed),
        None => write_random_vit(dir, config, seed),
    }
}

fn write_random_vit(dir: &Path, config: &ClipConfig, seed: u64) -> Result<(), ModelError> {
    let mut w = Writer::start(dir, config, seed)?;
    let t = &config.text_config;
    let v = &config.vision_config;
    let d = config.projection_dim;

    w.normal(
        "text_model.embeddings.token_embedding.weight".into(),
        &[t.vocab_size, t.hidden_size],
        0.02,
    )?;
    w.normal(
        "text_model.embeddings.position_embedding.weight".into(),
        &[t.max_position_embeddings, t.hidden_size],
        0.01,
    )?;
    w.encoder(
        "text_model.encoder",
        t.hidden_size,
        t.intermediate_size,
        t.num_hidden_layers,
    )?;
    w.layer_norm("text_model.final_layer_norm", t.hidden_size)?;

    let p = v.patch_size;
    w.normal(
        "vision_model.embeddings.class_embedding".into(),
        &[v.hidden_size],
        0.02,
    )?;
    w.normal(
        "vision_model.embeddings.patch_embedding.weight".into(),
        &[v.hidden_size, v.num_channels, p, p],
        ((v.num_channels * p * p) as f64).powf(-0.5),
    )?;
    w.normal(
        "vision_model.embeddings.position_embedding.weight".into(),
        &[v.grid() * v.grid() + 1, v.hidden_size],
        0.02,
    )?;
    w.layer_norm("vision_model.pre_layrnorm", v.hidden_size)?;
    w.encoder(
        "vision_model.encoder",
        v.hidden_size,
        v.intermediate_size,
        v.num_hidden_layers,
    )?;
    w.layer_norm("vision_model.post_layernorm", v.hidden_size)?;

    w.linear("visual_projection", d, v.hidden_size, false)?;
    w.linear("text_projection", d, t.hidden_size, false)?;

    let mut json = serde_json::to_value(config).map_err(|e| ModelError::Io {
        action: "write",
        path: dir.join("config.json"),
        source: std::io::Error::other(e),
    })?;
    if let Some(obj) = json.as_object_mut() {
        obj.insert("model_type".into(), "clip".into());
        obj.insert("architectures".into(), serde_json::json!(["CLIPModel"]));
    }
    w.finish(dir, "model.safetensors", "config.json", &json)
}

impl Writer {
    /// A BatchNorm with statistics away from (0, 1), so folding is exercised.
    fn batch_norm(&mut self, prefix: &str, n: usize, gamma: f32) -> Result<(), ModelError> {
        self.constant_plus_noise(format!("{prefix}.weight"), n, gamma, 0.05)?;
        self.constant_plus_noise(format!("{prefix}.bias"), n, 0.0, 0.05)?;
        self.constant_plus_noise(format!("{prefix}.running_mean"), n, 0.0, 0.05)?;
        let var: Vec<f32> = (0..n).map(|_| 1.0 + self.rng.sample(0.1).abs()).collect();
        let name = format!("{prefix}.running_var");
        let t = Tensor::from_vec(var, n, &Device::Cpu).map_err(tensor_error(&name))?;
        self.tensors.insert(name, t);
        Ok(())
    }

    /// He-initialised bias-free convolution, as ResNets are.
    fn conv(&mut self, name: &str, out: usize, inp: usize, k: usize) -> Result<(), ModelError> {
        let fan_in = (inp * k * k) as f64;
        self.normal(
            format!("{name}.weight"),
            &[out, inp, k, k],
            (2.0 / fan_in).sqrt(),
        )
    }
}

/// A random OpenAI ResNet CLIP in open_clip's layout, with OpenAI's tensor
/// names throughout.
fn write_random_resnet(
    dir: &Path,
    config: &ClipConfig,
    r: &ResNetConfig,
    seed: u64,
) -> Result<(), ModelError> {
    let mut w = Writer::start(dir, config, seed)?;
    let t = &config.text_config;
    let d = config.projection_dim;
    let width = r.width;

    // Image tower.
    for (i, (inp, out)) in [(3, width / 2), (width / 2, width / 2), (width / 2, width)]
        .into_iter()
        .enumerate()
    {
        w.conv(&format!("visual.conv{}", i + 1), out, inp, 3)?;
        w.batch_norm(&format!("visual.bn{}", i + 1), out, 1.0)?;
    }
    let mut inplanes = width;
    for (stage, &blocks) in r.layers.iter().enumerate() {
        let planes = width << stage;
        for block in 0..blocks {
            let p = format!("visual.layer{}.{block}", stage + 1);
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            w.conv(&format!("{p}.conv1"), planes, inplanes, 1)?;
            w.batch_norm(&format!("{p}.bn1"), planes, 1.0)?;
            w.conv(&format!("{p}.conv2"), planes, planes, 3)?;
            w.batch_norm(&format!("{p}.bn2"), planes, 1.0)?;
            w.conv(&format!("{p}.conv3"), planes * 4, planes, 1)?;
            // A small residual branch keeps deep random stacks finite.
            w.batch_norm(&format!("{p}.bn3"), planes * 4, 0.2)?;
            if stride > 1 || inplanes != planes * 4 {
                w.conv(&format!("{p}.downsample.0"), planes * 4, inplanes, 1)?;
                w.batch_norm(&format!("{p}.downsample.1"), planes * 4, 1.0)?;
            }
            inplanes = planes * 4;
        }
    }
    let embed = r.embed_width();
    let grid = config.vision_config.image_size / 32;
    w.normal(
        "visual.attnpool.positional_embedding".into(),
        &[grid * grid + 1, embed],
        (embed as f64).powf(-0.5),
    )?;
    for proj in ["q_proj", "k_proj", "v_proj"] {
        w.linear(&format!("visual.attnpool.{proj}"), embed, embed, true)?;
    }
    w.linear("visual.attnpool.c_proj", d, embed, true)?;

    // Text tower, OpenAI's names.
    let tw = t.hidden_size;
    w.normal("token_embedding.weight".into(), &[t.vocab_size, tw], 0.02)?;
    w.normal(
        "positional_embedding".into(),
        &[t.max_position_embeddings, tw],
        0.01,
    )?;
    for i in 0..t.num_hidden_layers {
        let p = format!("transformer.resblocks.{i}");
        w.normal(
            format!("{p}.attn.in_proj_weight"),
            &[3 * tw, tw],
            (tw as f64).powf(-0.5),
        )?;
        w.normal(format!("{p}.attn.in_proj_bias"), &[3 * tw], 0.02)?;
        w.linear(&format!("{p}.attn.out_proj"), tw, tw, true)?;
        w.layer_norm(&format!("{p}.ln_1"), tw)?;
        w.linear(&format!("{p}.mlp.c_fc"), t.intermediate_size, tw, true)?;
        w.linear(&format!("{p}.mlp.c_proj"), tw, t.intermediate_size, true)?;
        w.layer_norm(&format!("{p}.ln_2"), tw)?;
    }
    w.layer_norm("ln_final", tw)?;
    w.normal("text_projection".into(), &[tw, d], (tw as f64).powf(-0.5))?;

    let json = serde_json::json!({
        "model_cfg": {
            "embed_dim": d,
            "quick_gelu": true,
            "vision_cfg": {
                "image_size": config.vision_config.image_size,
                "layers": r.layers,
                "width": width,
                "head_width": embed / r.heads,
                "patch_size": null,
            },
            "text_cfg": {
                "context_length": t.max_position_embeddings,
                "vocab_size": t.vocab_size,
                "width": tw,
                "heads": t.num_attention_heads,
                "layers": t.num_hidden_layers,
                "mlp_ratio": t.intermediate_size as f64 / tw as f64,
            },
        },
    });
    w.finish(
        dir,
        "open_clip_model.safetensors",
        "open_clip_config.json",
        &json,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values() {
        let mut a = Normal::new(7);
        let mut b = Normal::new(7);
        let mut c = Normal::new(8);
        let xs: Vec<f32> = (0..16).map(|_| a.sample(1.0)).collect();
        let ys: Vec<f32> = (0..16).map(|_| b.sample(1.0)).collect();
        let zs: Vec<f32> = (0..16).map(|_| c.sample(1.0)).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        let mean = xs.iter().sum::<f32>() / 16.0;
        assert!(mean.abs() < 1.0);
    }

    /// Every tensor written is a parameter but the BatchNorms' running
    /// statistics, so the file holds exactly the parameter count the
    /// config computes.
    #[test]
    fn files_hold_the_configs_parameter_count() {
        let resnet = ClipConfig::resnet([1, 2, 1, 1], 8, 64, 16, 8, 2);
        for (config, weights) in [
            (ClipConfig::tiny(), "model.safetensors"),
            (resnet, "open_clip_model.safetensors"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            write_random_model(dir.path(), &config, 3).unwrap();
            let tensors =
                candle_core::safetensors::load(dir.path().join(weights), &Device::Cpu).unwrap();
            let parameters: usize = tensors
                .iter()
                .filter(|(name, _)| !name.contains("running_"))
                .map(|(_, t)| t.elem_count())
                .sum();
            assert_eq!(parameters, config.parameter_count(), "{weights}");
        }
    }
}
