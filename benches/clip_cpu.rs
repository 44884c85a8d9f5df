//! CPU throughput of the CLIP path, with random weights of the published shapes:
//!
//! - `decode_preprocess/one_core`: JPEG decode + PIL-exact resize + crop of
//!   500x375 JPEGs to the 8-bit RGB the engine sends to the model thread
//!   (normalisation happens there, on the device), on a single rayon
//!   thread (images/s per core);
//! - `vit_b32_image_encoder/batch32`, `rn50_image_encoder/batch32`,
//!   `rn101_image_encoder/batch32`: each image tower alone on a
//!   preprocessed batch of 32 (images/s, all cores);
//! - `sql/clip_embed_image`: `SELECT clip_embed_image('<ViT-B/32 dir>', image)`
//!   over 64 in-memory JPEGs through a `SessionContext` (images/s end to end).
//!
//! The PyTorch/PIL peer for the same numbers is `benches/peer/clip_cpu_peer.py`;
//! `benches/peer/compare_cpu.sh` runs both and prints the ratios.
//!
//! ```sh
//! cargo bench --bench clip_cpu
//! ```

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use clip_model::checkpoint::write_random_model;
use clip_model::{ModelFiles, Preprocessor, find_known, load_model};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{BinaryArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use image::{ImageBuffer, Rgb};

/// A photo-like 500x375 JPEG: smooth gradients plus texture, so the
/// decoder does real work, different for each seed.
fn photo_jpeg(seed: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(500, 375, |x, y| {
        let n = (x.wrapping_mul(73_856_093)
            ^ y.wrapping_mul(19_349_663)
            ^ seed.wrapping_mul(83_492_791))
            % 32;
        Rgb([
            ((x * 255 / 500) as u8).wrapping_add(n as u8),
            ((y * 255 / 375) as u8).wrapping_add((seed * 40) as u8),
            (((x + y + seed) % 256) as u8) ^ (n as u8),
        ])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// `n` benchmark JPEGs: the files of `$CLIP_BENCH_JPEG_DIR` when set (the
/// peer comparison decodes the very same bytes), else generated here.
fn photos(n: usize) -> Vec<Vec<u8>> {
    if let Ok(dir) = std::env::var("CLIP_BENCH_JPEG_DIR") {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .collect();
        files.sort();
        assert!(
            files.len() >= n,
            "{dir} holds {} JPEGs, need {n}",
            files.len()
        );
        return files[..n]
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
    }
    (0..n as u32).map(photo_jpeg).collect()
}

/// A ViT-B/32-shaped random model, written once and reused across runs.
fn vit_b32_dir() -> PathBuf {
    let dir = std::env::temp_dir()
        .join("datafusion-clip-bench")
        .join("vit-b-32-random");
    if !dir.join("model.safetensors").is_file() {
        let config = find_known("ViT-B/32").unwrap().config();
        write_random_model(&dir, &config, 0).unwrap();
    }
    dir
}

fn decode_preprocess(c: &mut Criterion) {
    let images = photos(32);
    let pre = Preprocessor::new(224);
    let one_core = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("decode_preprocess");
    group.throughput(Throughput::Elements(images.len() as u64));
    group.bench_function("one_core", |b| {
        b.iter(|| {
            one_core.install(|| {
                let refs: Vec<Option<&[u8]>> = images.iter().map(|i| Some(i.as_slice())).collect();
                let out = pre.resized_rgb_batch(&refs);
                assert!(out.iter().all(Result::is_ok));
            })
        })
    });
    group.finish();
}

/// A random RN50 or RN101 in open_clip's layout, written once.
fn resnet_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join("datafusion-clip-bench")
        .join(format!("{name}-random"));
    if !dir.join("open_clip_model.safetensors").is_file() {
        let config = match name {
            "rn50" => find_known("RN50"),
            _ => find_known("RN101"),
        };
        write_random_model(&dir, &config.unwrap().config(), 0).unwrap();
    }
    dir
}

/// One image tower on a preprocessed batch of 32 at 224 px.
fn bench_tower(c: &mut Criterion, group_name: &str, dir: &Path) {
    let files = ModelFiles::in_directory(dir).unwrap();
    let model = load_model(&files, &Device::Cpu, DType::F32).unwrap();
    let pre = Preprocessor::new(224);
    let mut pixels = Vec::new();
    for image in photos(32) {
        pixels.extend(pre.preprocess(&image).unwrap());
    }
    let x = Tensor::from_vec(pixels, (32, 3, 224, 224), &Device::Cpu).unwrap();
    let mut group = c.benchmark_group(group_name);
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(32));
    group.bench_function("batch32", |b| b.iter(|| model.encode_image(&x).unwrap()));
    group.finish();
}

fn image_encoder(c: &mut Criterion) {
    bench_tower(c, "vit_b32_image_encoder", &vit_b32_dir());
    bench_tower(c, "rn50_image_encoder", &resnet_dir("rn50"));
    bench_tower(c, "rn101_image_encoder", &resnet_dir("rn101"));
}

fn sql_embed_image(c: &mut Criterion) {
    let dir = vit_b32_dir();
    let n = 64;
    let schema = Arc::new(Schema::new(vec![Field::new(
        "image",
        DataType::Binary,
        false,
    )]));
    let images = BinaryArray::from_iter_values(photos(n));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(images)]).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ctx = SessionContext::new_with_config(datafusion_clip::session_config());
    datafusion_clip::register(&ctx).unwrap();
    ctx.register_table(
        "photos",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    let sql = format!(
        "SELECT count(clip_embed_image('{}', image)) FROM photos",
        dir.display()
    );
    // Load the model outside the measurement.
    runtime.block_on(async { ctx.sql(&sql).await.unwrap().collect().await.unwrap() });
    let mut group = c.benchmark_group("sql");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(60));
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("clip_embed_image", |b| {
        b.iter(|| runtime.block_on(async { ctx.sql(&sql).await.unwrap().collect().await.unwrap() }))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // No HTML plots: criterion's plotting backend needs a system font and
    // panics on machines without one (CI images, the GPU machine).
    config = Criterion::default().without_plots();
    targets = decode_preprocess, image_encoder, sql_embed_image
}
criterion_main!(benches);
