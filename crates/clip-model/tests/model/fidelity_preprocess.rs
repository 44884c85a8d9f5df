//! Preprocessed pixels against the reference (open_clip's eval transform:
//! torchvision `Resize(n, BICUBIC)` on the PIL image, `CenterCrop(n)`,
//! `convert("RGB")`, `ToTensor`, `Normalize`) at 224 and 336 on the
//! committed images of `tests/fixtures/images/`: JPEG (baseline,
//! progressive, 4:4:4, 4:2:2, gray, CMYK), WebP (lossy, lossless RGBA), PNG
//! (RGB, L, LA, RGBA, P, 16-bit gray and RGB), GIF, BMP, TIFF; 1-pixel-wide,
//! 5000x20, 7x7, exact-size, up- and downscaled.
//!
//! The bound: lossless formats give the reference's bytes exactly; JPEG and
//! lossy WebP, whose decoders are not PIL's libjpeg-turbo and libwebp, stay
//! within 1/255 at every position.

use std::path::{Path, PathBuf};

use clip_model::Preprocessor;
use clip_model::image::{CLIP_MEAN, CLIP_STD};

#[derive(serde::Deserialize)]
struct Image {
    file: String,
    pil_mode: String,
}

#[derive(serde::Deserialize)]
struct Cases {
    sizes: Vec<usize>,
    images: Vec<Image>,
}

fn fixtures() -> PathBuf {
    Path::new(crate::support::repo()).join("tests/fixtures")
}

fn cases() -> Cases {
    serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("preprocess/cases.json")).unwrap(),
    )
    .unwrap()
}

/// The reference's 8-bit RGB crop of `file` at `size`.
fn reference_rgb(file: &str, size: usize) -> Vec<u8> {
    let png = fixtures().join(format!("preprocess/{file}_{size}.png"));
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!((img.width() as usize, img.height() as usize), (size, size));
    img.into_raw()
}

fn is_lossy(file: &str) -> bool {
    file.ends_with(".jpg") || file.ends_with("lossy.webp")
}

#[test]
fn pixels_match_the_reference_at_224_and_336() {
    let cases = cases();
    assert!(cases.images.len() >= 20);
    assert_eq!(cases.sizes, [224, 336]);
    let mut failures = Vec::new();
    let mut report = Vec::new();
    let (mut total_diff, mut total_values, mut worst) = (0u64, 0u64, 0u8);
    for image in &cases.images {
        let bytes = std::fs::read(fixtures().join("images").join(&image.file)).unwrap();
        for &size in &cases.sizes {
            let expected = reference_rgb(&image.file, size);
            let ours = Preprocessor::new(size).resized_rgb(&bytes).unwrap();
            assert_eq!(ours.len(), expected.len());
            let diffs: Vec<u8> = ours
                .iter()
                .zip(&expected)
                .map(|(a, b)| a.abs_diff(*b))
                .collect();
            let max = diffs.iter().copied().max().unwrap_or(0);
            let sum: u64 = diffs.iter().map(|&d| u64::from(d)).sum();
            let differing = diffs.iter().filter(|&&d| d != 0).count();
            total_diff += sum;
            total_values += diffs.len() as u64;
            worst = worst.max(max);
            report.push(format!(
                "{:<30} {:>5} {size}: max {max}/255, mean {:.5}/255, {differing} values differ",
                image.file,
                image.pil_mode,
                sum as f64 / diffs.len() as f64
            ));
            let bound = if is_lossy(&image.file) { 1 } else { 0 };
            if max > bound {
                failures.push(format!(
                    "{} ({}) at {size}: {differing} values differ, by up to {max} (bound {bound})",
                    image.file, image.pil_mode
                ));
            }
        }
    }
    eprintln!(
        "{}\nall: max {worst}/255, mean {:.6}/255 over {total_values} values",
        report.join("\n"),
        total_diff as f64 / total_values as f64
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn normalisation_is_torchvision_to_tensor_then_normalize_in_f32() {
    // On a lossless image our crop equals the reference's, so the
    // normalised values must be the reference's f32 arithmetic on it.
    let file = "rgb_500x375.png";
    let bytes = std::fs::read(fixtures().join("images").join(file)).unwrap();
    let expected = reference_rgb(file, 224);
    let ours = Preprocessor::new(224).preprocess(&bytes).unwrap();
    let plane = 224 * 224;
    for (i, px) in expected.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let reference = (f32::from(px[c]) / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
            assert_eq!(ours[c * plane + i], reference, "pixel {i} channel {c}");
        }
    }
}
