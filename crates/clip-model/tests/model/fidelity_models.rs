//! Embeddings and logits against the reference implementations on the
//! same random weights, for both weight layouts:
//!
//! - `models/hf_tiny`: transformers' `CLIPModel.save_pretrained`;
//! - `models/open_clip_tiny`: open_clip's state dict in
//!   `open_clip_model.safetensors` + `open_clip_config.json`;
//! - `models/open_clip_tiny_bin`: the same as `open_clip_pytorch_model.bin`;
//! - `models/open_clip_resnet_tiny`: OpenAI's ModifiedResNet tower (the RN
//!   family) with randomised BatchNorm statistics, open_clip layout.
//!
//! Written by the repository's `tests/fixtures/make_reference.py`. The
//! zero-shot predictions through SQL on the same fixtures are checked by
//! the whole product's tests (`tests/it/fidelity_zero_shot.rs`). The
//! full-size ViT-B/32, ViT-L/14 and RN50 cases are generated on demand
//! (`make_reference.py full DIR`) and checked by the ignored test at the end:
//! `CLIP_FULL_FIXTURES=DIR cargo test --release -p clip-model --test model fidelity_models -- --ignored --nocapture`.

use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor};
use clip_model::checkpoint::Layout;
use clip_model::image::{CLIP_MEAN, CLIP_STD};
use clip_model::{ClipModel, ClipTokenizer, ModelRef};
use clip_model::{HubOptions, ModelFiles, fetch_files, load_model};

use crate::support::{copy_of, max_abs_diff, repo};

/// What `reference.json` says about the model and its inputs.
#[derive(serde::Deserialize)]
struct Reference {
    images: Vec<String>,
    image_size: usize,
    prompts: Vec<String>,
    logit_scale_exp: f32,
}

fn fixtures() -> PathBuf {
    Path::new(repo()).join("tests/fixtures")
}

/// The model in `dir` through the real loader, as a SQL model argument is.
fn load(dir: &Path, dtype: DType) -> (ModelFiles, ClipModel) {
    let model = ModelRef::parse(dir.to_str().unwrap()).unwrap();
    let hub = HubOptions::from_env(true);
    let files = fetch_files(&model, &hub).unwrap();
    let clip = load_model(&files, &Device::Cpu, dtype).unwrap();
    (files, clip)
}

/// The reference's normalised pixels: its 8-bit crops, which
/// `fidelity_preprocess` shows are its exact input, through ToTensor and
/// Normalize.
fn reference_pixels(images: &[String], size: usize) -> Tensor {
    let plane = size * size;
    let mut values = Vec::with_capacity(images.len() * 3 * plane);
    for file in images {
        let png = fixtures().join(format!("preprocess/{file}_{size}.png"));
        let rgb = image::open(&png).unwrap().to_rgb8().into_raw();
        let mut chw = vec![0f32; 3 * plane];
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                chw[c * plane + i] = (f32::from(px[c]) / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
            }
        }
        values.extend(chw);
    }
    Tensor::from_vec(values, (images.len(), 3, size, size), &Device::Cpu).unwrap()
}

fn l2_normalised(t: &Tensor) -> Tensor {
    t.broadcast_div(
        &t.sqr()
            .unwrap()
            .sum_keepdim(D::Minus1)
            .unwrap()
            .sqrt()
            .unwrap(),
    )
    .unwrap()
}

/// What one model's comparison measured.
struct Measured {
    image: f32,
    text: f32,
    logits: f32,
}

/// Embeddings and logits of the model in `dir` against its
/// `reference.safetensors`.
fn compare_embeddings(dir: &Path, layout: Layout) -> Measured {
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu).unwrap();
    let (files, model) = load(dir, DType::F32);
    assert_eq!(files.set.layout, layout, "{}", dir.display());
    assert_eq!(
        model.config().vision_config.image_size,
        reference.image_size
    );

    let pixels = reference_pixels(&reference.images, reference.image_size);
    let image = model.encode_image(&pixels).unwrap();
    let image_diff = max_abs_diff(&image, &tensors["image_embeds"]);

    // Our tokenizer's ids must be the reference's before the text tower
    // is compared at all.
    let tokenizer = ClipTokenizer::shared();
    let prompts: Vec<_> = reference
        .prompts
        .iter()
        .map(|p| tokenizer.tokenize(p, 77))
        .collect();
    let reference_ids = tensors["text_ids"].to_vec2::<i64>().unwrap();
    for (ours, theirs) in prompts.iter().zip(&reference_ids) {
        let theirs: Vec<u32> = theirs
            .iter()
            .filter(|&&t| t != 0)
            .map(|&t| t as u32)
            .collect();
        assert_eq!(ours.ids, theirs);
    }
    let text = model.encode_text(&prompts, &Device::Cpu).unwrap();
    let text_diff = max_abs_diff(&text, &tensors["text_embeds"]);

    assert!(
        (model.logit_scale_exp() - reference.logit_scale_exp).abs()
            < 1e-5 * reference.logit_scale_exp
    );
    let logits = (l2_normalised(&image)
        .matmul(&l2_normalised(&text).t().unwrap())
        .unwrap()
        * f64::from(model.logit_scale_exp()))
    .unwrap();
    let logits_diff = max_abs_diff(&logits, &tensors["logits_per_image"]);
    Measured {
        image: image_diff,
        text: text_diff,
        logits: logits_diff,
    }
}

const TINY: [(&str, Layout); 4] = [
    ("hf_tiny", Layout::HuggingFace),
    ("open_clip_tiny", Layout::OpenClip),
    ("open_clip_tiny_bin", Layout::OpenClip),
    ("open_clip_resnet_tiny", Layout::OpenClip),
];

#[test]
fn embeddings_match_the_reference_in_both_layouts() {
    for (name, layout) in TINY {
        let m = compare_embeddings(&fixtures().join("models").join(name), layout);
        eprintln!(
            "{name}: max abs diff image {:.2e}, text {:.2e}, logits {:.2e}",
            m.image, m.text, m.logits
        );
        assert!(
            m.image < 1e-4,
            "{name}: image embeddings differ by {}",
            m.image
        );
        assert!(
            m.text < 1e-4,
            "{name}: text embeddings differ by {}",
            m.text
        );
        assert!(m.logits < 1e-4, "{name}: logits differ by {}", m.logits);
    }
}

#[test]
fn safetensors_and_pickle_give_the_same_model() {
    let models = fixtures().join("models");
    let (a_files, a) = load(&models.join("open_clip_tiny"), DType::F32);
    let (b_files, b) = load(&models.join("open_clip_tiny_bin"), DType::F32);
    assert!(a_files.weights.ends_with("open_clip_model.safetensors"));
    assert!(b_files.weights.ends_with("open_clip_pytorch_model.bin"));
    let pixels = reference_pixels(&["rgb_7x7.png".to_string()], 336);
    let d = max_abs_diff(
        &a.encode_image(&pixels).unwrap(),
        &b.encode_image(&pixels).unwrap(),
    );
    assert_eq!(d, 0.0);
}

/// A copy of fixture model `name` whose config file `edit` changes.
fn edited_copy(
    name: &str,
    config_file: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> tempfile::TempDir {
    let dir = copy_of(&fixtures().join("models").join(name));
    let path = dir.path().join(config_file);
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
    dir
}

fn load_error(dir: &Path) -> String {
    let model = ModelRef::parse(dir.to_str().unwrap()).unwrap();
    let files = fetch_files(&model, &HubOptions::from_env(true)).unwrap();
    match load_model(&files, &Device::Cpu, DType::F32) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_config_with_fewer_layers_than_the_weights_is_refused() {
    // transformers' layout, safetensors: the image tower one layer short.
    let dir = edited_copy("hf_tiny", "config.json", |c| {
        c["vision_config"]["num_hidden_layers"] = 1.into();
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("holds 2 image transformer layers, but its config.json describes 1"),
        "{err}"
    );
    // open_clip's layout, pickle: the text tower.
    let dir = edited_copy("open_clip_tiny_bin", "open_clip_config.json", |c| {
        c["model_cfg"]["text_cfg"]["layers"] = 1.into();
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("text transformer layers, but its open_clip_config.json describes 1"),
        "{err}"
    );
    // A ResNet stage with a block fewer.
    let dir = edited_copy("open_clip_resnet_tiny", "open_clip_config.json", |c| {
        c["model_cfg"]["vision_cfg"]["layers"] = serde_json::json!([1, 1, 1, 1]);
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("holds 2 blocks in ResNet stage 2, but its"),
        "{err}"
    );
}

/// Full-size random ViT-B/32 and ViT-L/14 in both layouts, generated with
/// `python tests/fixtures/make_reference.py full DIR`.
#[test]
#[ignore = "needs CLIP_FULL_FIXTURES from make_reference.py full (several GB)"]
fn full_size_models_match_the_reference() {
    let root = PathBuf::from(
        std::env::var("CLIP_FULL_FIXTURES")
            .expect("set CLIP_FULL_FIXTURES to the directory make_reference.py full wrote"),
    );
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("reference.json").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no cases under {}", root.display());
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let layout = if name.contains("open_clip") {
            Layout::OpenClip
        } else {
            Layout::HuggingFace
        };
        let m = compare_embeddings(&dir, layout);
        eprintln!(
            "{name}: max abs diff image {:.2e}, text {:.2e}, logits {:.2e}",
            m.image, m.text, m.logits
        );
        assert!(m.image < 1e-4 && m.text < 1e-4, "{name}");
        half_precision_report(&dir, &name);
    }
}

/// f16 and bf16 against f32 on the same weights, on the first eight
/// fixture images (candle's CPU half-precision matmul is slow): the figures
/// `tests/fixtures/README.md` quotes. Fails only if half precision is
/// unusable (cosine < 0.99).
fn half_precision_report(dir: &Path, name: &str) {
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let pixels = reference_pixels(&reference.images[..8], reference.image_size);
    let (_, f32_model) = load(dir, DType::F32);
    let exact = l2_normalised(&f32_model.encode_image(&pixels).unwrap());
    let is_resnet = f32_model.config().resnet.is_some();
    for dtype in [DType::F16, DType::BF16] {
        if is_resnet && dtype == DType::BF16 {
            // candle has no CPU bf16 convolution; loading says so.
            continue;
        }
        let (_, model) = load(dir, dtype);
        let half = model
            .encode_image(&pixels.to_dtype(dtype).unwrap())
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let half = l2_normalised(&half);
        let cos = (&half * &exact).unwrap().sum(D::Minus1).unwrap();
        let worst_cos: f32 = cos.min(0).unwrap().to_scalar().unwrap();
        eprintln!(
            "{name} {dtype:?}: normalised image embedding max abs diff {:.2e}, min cosine to f32 {worst_cos:.6}",
            max_abs_diff(&half, &exact)
        );
        assert!(worst_cos > 0.99, "{name} {dtype:?}: cosine {worst_cos}");
    }
}
