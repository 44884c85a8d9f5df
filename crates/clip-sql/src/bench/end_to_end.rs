//! End-to-end images/s of a SQL query over a folder of encoded images, and
//! where its wall time goes: the scan alone, decode + preprocess, the model
//! thread's busy time, and what is left.

use std::path::{Path, PathBuf};
use std::time::Instant;

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::prelude::SessionContext;

use clip_model::Preprocessor;
use clip_model::image::IMAGE_EXTENSIONS;
use datafusion_clip::stage_times;

use super::error::BenchError;

/// What the end-to-end measurement found.
#[derive(Debug, Clone)]
pub struct EndToEnd {
    pub model: String,
    pub images: usize,
    /// Wall time of `SELECT count(clip_embed_image(...)) FROM images`.
    pub wall_s: f64,
    /// The same table scanned with no model (`count(octet_length(image))`).
    pub scan_only_s: f64,
    /// Decode + preprocess time summed over the partitions that decoded.
    pub decode_cpu_s: f64,
    /// Decode + preprocess of the same files on all cores with nothing else
    /// running: the most images/s the CPU can feed.
    pub decode_bound_images_per_s: f64,
    /// The same on one core.
    pub decode_one_core_images_per_s: f64,
    /// Time the model thread spent in forward passes during the query.
    pub model_busy_s: f64,
    pub passes: u64,
    pub rows_in_passes: u64,
}

impl EndToEnd {
    pub fn images_per_s(&self) -> f64 {
        self.images as f64 / self.wall_s
    }

    /// Images/s the model thread achieved while busy.
    pub fn model_images_per_s(&self) -> f64 {
        self.rows_in_passes as f64 / self.model_busy_s.max(1e-9)
    }

    /// Wall time in which the model thread had nothing to run.
    pub fn model_idle_s(&self) -> f64 {
        (self.wall_s - self.model_busy_s).max(0.0)
    }
}

/// The image files under `dir` and its subdirectories (by extension, as
/// IMAGEFOLDER walks them), sorted.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), BenchError> {
        let cannot_list = |source| BenchError::Io {
            action: "list",
            path: dir.to_path_buf(),
            source,
        };
        for entry in std::fs::read_dir(dir).map_err(cannot_list)? {
            let path = entry.map_err(cannot_list)?.path();
            if path.is_dir() {
                walk(&path, files)?;
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                files.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(BenchError::NoImages {
            dir: dir.to_path_buf(),
        });
    }
    Ok(files)
}

/// Decode-bound images/s of `images` at `size`: on all of rayon's threads,
/// and on one.
pub fn decode_rates(images: &[Vec<u8>], size: usize) -> Result<(f64, f64), BenchError> {
    let pre = Preprocessor::new(size);
    let refs: Vec<Option<&[u8]>> = images.iter().map(|i| Some(i.as_slice())).collect();
    let time = |refs: &[Option<&[u8]>]| -> Result<f64, BenchError> {
        let started = Instant::now();
        let out = pre.resized_rgb_batch(refs);
        if let Some(Err(e)) = out.into_iter().find(Result::is_err) {
            return Err(BenchError::BadImage(e));
        }
        Ok(refs.len() as f64 / started.elapsed().as_secs_f64())
    };
    let all_cores = time(&refs)?;
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let sample = &refs[..refs.len().min(256)];
    let one_core = one.install(|| time(sample))?;
    Ok((all_cores, one_core))
}

async fn count(ctx: &SessionContext, sql: &str) -> Result<i64, BenchError> {
    let batches = ctx.sql(sql).await?.collect().await?;
    batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .map(|a| a.value(0))
        })
        .ok_or_else(|| BenchError::NoCount {
            sql: sql.to_string(),
        })
}

/// Register `dir` as an IMAGEFOLDER table and time the query over it with
/// `model` (settings such as `clip.batch_size` come from `ctx`).
pub async fn measure_end_to_end(
    ctx: &SessionContext,
    dir: &Path,
    model: &str,
    image_size: usize,
) -> Result<EndToEnd, BenchError> {
    let files = image_files(dir)?;
    let bytes: Vec<Vec<u8>> = files
        .iter()
        .map(|p| {
            std::fs::read(p).map_err(|source| BenchError::Io {
                action: "read",
                path: p.clone(),
                source,
            })
        })
        .collect::<Result<_, _>>()?;
    let (decode_bound, decode_one_core) = decode_rates(&bytes, image_size)?;
    drop(bytes);

    let location = format!("{}/", dir.display());
    ctx.sql(&format!(
        "CREATE OR REPLACE EXTERNAL TABLE clip_bench_images STORED AS IMAGEFOLDER LOCATION '{}'",
        location.replace('\'', "''")
    ))
    .await?;
    let model_sql = model.replace('\'', "''");
    // Load the model and warm its kernels outside the measurement.
    count(
        ctx,
        &format!(
            "SELECT count(clip_embed_image('{model_sql}', image)) FROM \
             (SELECT image FROM clip_bench_images LIMIT 64)"
        ),
    )
    .await?;

    let started = Instant::now();
    let scanned = count(ctx, "SELECT count(*), max(image) FROM clip_bench_images").await?;
    let scan_only_s = started.elapsed().as_secs_f64();

    let before = stage_times();
    let started = Instant::now();
    let encoded = count(
        ctx,
        &format!("SELECT count(clip_embed_image('{model_sql}', image)) FROM clip_bench_images"),
    )
    .await?;
    let wall_s = started.elapsed().as_secs_f64();
    let stages = stage_times() - before;
    if encoded != scanned || encoded as usize != files.len() {
        return Err(BenchError::ImagesFailed {
            files: files.len(),
            scanned,
            encoded,
        });
    }
    Ok(EndToEnd {
        model: model.to_string(),
        images: files.len(),
        wall_s,
        scan_only_s,
        decode_cpu_s: stages.decode.as_secs_f64(),
        decode_bound_images_per_s: decode_bound,
        decode_one_core_images_per_s: decode_one_core,
        model_busy_s: stages.model.as_secs_f64(),
        passes: stages.passes,
        rows_in_passes: stages.rows,
    })
}
