//! Our ViT and text towers against candle-transformers' CLIP (a port of
//! Hugging Face's `CLIPModel`) on the same random weights: an independent
//! implementation must give the same embeddings. The Python reference
//! fixtures of the fidelity suite go further; this needs no fixture.

use crate::support;

use crate::support::{max_abs_diff, tiny_model_dir};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::clip as reference;
use clip_model::ClipConfig;
use clip_model::{ClipTokenizer, Preprocessor};
use clip_model::{ModelFiles, load_model};

fn reference_config(c: &ClipConfig) -> reference::ClipConfig {
    let t = &c.text_config;
    let v = &c.vision_config;
    reference::ClipConfig {
        text_config: reference::text_model::ClipTextConfig {
            vocab_size: t.vocab_size,
            embed_dim: t.hidden_size,
            activation: reference::text_model::Activation::QuickGelu,
            intermediate_size: t.intermediate_size,
            max_position_embeddings: t.max_position_embeddings,
            pad_with: None,
            num_hidden_layers: t.num_hidden_layers,
            num_attention_heads: t.num_attention_heads,
            projection_dim: c.projection_dim,
        },
        vision_config: reference::vision_model::ClipVisionConfig {
            embed_dim: v.hidden_size,
            activation: reference::text_model::Activation::QuickGelu,
            intermediate_size: v.intermediate_size,
            num_hidden_layers: v.num_hidden_layers,
            num_attention_heads: v.num_attention_heads,
            projection_dim: c.projection_dim,
            num_channels: v.num_channels,
            image_size: v.image_size,
            patch_size: v.patch_size,
        },
        logit_scale_init_value: 2.6592,
        image_size: v.image_size,
    }
}

#[test]
fn towers_match_candle_transformers_clip_on_the_same_weights() {
    let dir = tiny_model_dir();
    let files = ModelFiles::in_directory(dir).unwrap();
    let ours = load_model(&files, &Device::Cpu, DType::F32).unwrap();
    let config = ours.config().clone();
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(
            std::slice::from_ref(&files.weights),
            DType::F32,
            &Device::Cpu,
        )
    }
    .unwrap();
    let theirs = reference::ClipModel::new(vb, &reference_config(&config)).unwrap();

    // Images: two preprocessed test pictures.
    let pre = Preprocessor::new(config.vision_config.image_size);
    let mut pixels = pre.preprocess(&support::png_bytes(50, 40, 3)).unwrap();
    pixels.extend(pre.preprocess(&support::jpeg_bytes(40, 60, 4)).unwrap());
    let s = config.vision_config.image_size;
    let x = Tensor::from_vec(pixels, (2, 3, s, s), &Device::Cpu).unwrap();
    let a = ours.encode_image(&x).unwrap();
    let b = theirs.get_image_features(&x).unwrap();
    let d = max_abs_diff(&a, &b);
    assert!(d < 1e-4, "image embeddings differ by {d}");

    // Text: the reference pads to 77 and pools at argmax; we pad to the
    // longest prompt and pool at the end token found on the host.
    let tokenizer = ClipTokenizer::shared();
    let prompts = [
        tokenizer.tokenize("a photo of a cat.", 77),
        tokenizer.tokenize("a blurry black and white photo of the big dog", 77),
    ];
    let a = ours.encode_text(&prompts, &Device::Cpu).unwrap();
    let mut padded = vec![0u32; 2 * 77];
    for (i, p) in prompts.iter().enumerate() {
        padded[i * 77..i * 77 + p.ids.len()].copy_from_slice(&p.ids);
    }
    let ids = Tensor::from_vec(padded, (2, 77), &Device::Cpu).unwrap();
    let b = theirs.get_text_features(&ids).unwrap();
    let d = max_abs_diff(&a, &b);
    assert!(d < 1e-4, "text embeddings differ by {d}");
}

#[test]
fn half_precision_stays_close_to_f32() {
    let dir = tiny_model_dir();
    let files = ModelFiles::in_directory(dir).unwrap();
    let f32_model = load_model(&files, &Device::Cpu, DType::F32).unwrap();
    let s = f32_model.config().vision_config.image_size;
    let pixels = Preprocessor::new(s)
        .preprocess(&support::png_bytes(64, 64, 9))
        .unwrap();
    let x = Tensor::from_vec(pixels, (1, 3, s, s), &Device::Cpu).unwrap();
    let reference = f32_model.encode_image(&x).unwrap();
    let norm = reference
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .sqrt()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    for dtype in [DType::F16, DType::BF16] {
        let model = load_model(&files, &Device::Cpu, dtype).unwrap();
        let out = model
            .encode_image(&x.to_dtype(dtype).unwrap())
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let rel = max_abs_diff(&out, &reference) / norm;
        assert!(rel < 0.05, "{dtype:?} differs from f32 by {rel} (relative)");
    }
}
