//! What the model crate's tests and the whole product's tests (the
//! repository's `tests/common.rs` includes this file) both need: where the
//! repository is, a tiny random-weight CLIP written once per test process
//! and read through the real loader, images made in memory, and a tensor
//! comparison. Nothing here knows SQL or Arrow.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, OnceLock};

use clip_model::ClipConfig;
use clip_model::checkpoint::write_random_model;
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, Rgba};

/// The repository's root, where `sql/` and `tests/fixtures/` are (every
/// crate is two folders below it), without `..` in it: the path goes into
/// SQL locations.
pub fn repo() -> &'static str {
    static REPO: LazyLock<String> = LazyLock::new(|| {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .canonicalize()
            .unwrap()
            .display()
            .to_string()
    });
    &REPO
}

/// [`repo`] for format strings: `format!("{ROOT}/sql/data")`.
pub const ROOT: RepoRoot = RepoRoot;

pub struct RepoRoot;

impl std::fmt::Display for RepoRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(repo())
    }
}

/// Directory of the tiny model (32-pixel input, 24-d embedding), written on
/// first use in each test process.
///
/// It lives at one place under cargo's target directory rather than in a
/// fresh temporary directory per process, which nothing would remove. Every
/// process writes it again (the same bytes: the seed is fixed) and moves
/// each file into place with an atomic rename, so test binaries running side
/// by side never read a half-written file, and a model from an older build
/// never survives.
pub fn tiny_model_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join("tiny-clip");
        std::fs::create_dir_all(&dir).unwrap();
        let staging = tempfile::Builder::new()
            .prefix("tiny-clip-")
            .tempdir_in(root)
            .unwrap();
        write_random_model(staging.path(), &ClipConfig::tiny(), 42).unwrap();
        for file in std::fs::read_dir(staging.path()).unwrap() {
            let file = file.unwrap();
            std::fs::rename(file.path(), dir.join(file.file_name())).unwrap();
        }
        dir
    })
}

/// The tiny model as a SQL string literal's content.
pub fn tiny_model() -> String {
    tiny_model_dir().display().to_string()
}

/// Embedding width of [`tiny_model_dir`].
pub const TINY_DIM: usize = 24;

/// A colourful RGB test image: gradients plus a seed-dependent pattern, so
/// different seeds give different embeddings.
pub fn rgb_image(width: u32, height: u32, seed: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([
            ((x * 255) / width.max(1)) as u8,
            ((y * 255) / height.max(1)) as u8,
            (((x ^ y).wrapping_mul(seed.wrapping_mul(37) + 11)) % 256) as u8,
        ])
    }))
}

pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

pub fn png_bytes(width: u32, height: u32, seed: u32) -> Vec<u8> {
    encode(&rgb_image(width, height, seed), ImageFormat::Png)
}

pub fn jpeg_bytes(width: u32, height: u32, seed: u32) -> Vec<u8> {
    encode(&rgb_image(width, height, seed), ImageFormat::Jpeg)
}

pub fn gray_png_bytes(width: u32, height: u32) -> Vec<u8> {
    let img = DynamicImage::ImageLuma8(ImageBuffer::from_fn(width, height, |x, y| {
        Luma([((x * 7 + y * 3) % 256) as u8])
    }));
    encode(&img, ImageFormat::Png)
}

pub fn rgba_png_bytes(width: u32, height: u32) -> Vec<u8> {
    let img = DynamicImage::ImageRgba8(ImageBuffer::from_fn(width, height, |x, y| {
        Rgba([
            (x * 9 % 256) as u8,
            (y * 5 % 256) as u8,
            90,
            ((x + y) * 13 % 256) as u8,
        ])
    }));
    encode(&img, ImageFormat::Png)
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// A copy of the files of directory `dir` (not its subdirectories) in a new
/// temporary directory, e.g. a model's to break.
pub fn copy_of(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    copy
}
