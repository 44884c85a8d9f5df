//! Images and prompts in, L2-normalised embeddings out: the joint between
//! preprocessing (CPU, rayon) and the model thread.
//!
//! A call is cut into forward passes of `batch_size`. While the model
//! thread runs pass k, the calling thread decodes and preprocesses pass
//! k + 1, so decoding hides behind compute.

use candle_core::{DType, Device, Tensor};

use super::cancel::CancelCheck;
use super::model_cache::LoadedModel;
use super::progress;
use super::worker::{Pending, wait_off_runtime};
use crate::config::ClipOptions;
use crate::model::{ClipTokenizer, ImageError, Preprocessor, Tokens};

/// Embeddings of one forward pass, row-major (rows x dim), normalised.
type PassResult = Result<Vec<f32>, String>;

/// Embed encoded images. One entry per input in input order: the
/// normalised embedding, or why the image could not be used (NULL input,
/// undecodable bytes). `Err` of the whole call means the model failed.
/// `clip.batch_size` images go in one forward pass; `clip.max_image_pixels`
/// bounds what is decoded.
pub fn embed_images(
    model: &LoadedModel,
    images: &[Option<&[u8]>],
    options: &ClipOptions,
) -> Result<Vec<Result<Vec<f32>, ImageError>>, String> {
    let preprocessor = model.preprocessor.with_max_pixels(options.max_image_pixels);
    let cancel = CancelCheck::now();
    wait_off_runtime(|| {
        embed_images_blocking(
            model,
            &preprocessor,
            images,
            options.batch_size.max(1),
            cancel,
        )
    })
}

fn embed_images_blocking(
    model: &LoadedModel,
    preprocessor: &Preprocessor,
    images: &[Option<&[u8]>],
    batch_size: usize,
    cancel: CancelCheck,
) -> Result<Vec<Result<Vec<f32>, ImageError>>, String> {
    let dim = model.embed_dim;
    let size = preprocessor.size;
    let per_image = preprocessor.pixels_per_image();
    let mut results: Vec<Option<Result<Vec<f32>, ImageError>>> = vec![None; images.len()];
    let mut in_flight: Option<(Vec<usize>, Pending<PassResult>)> = None;

    for (chunk_index, chunk) in images.chunks(batch_size).enumerate() {
        cancel.check()?;
        let offset = chunk_index * batch_size;
        let decoded = preprocessor.preprocess_batch(chunk);
        let mut rows = Vec::new();
        let mut pixels = Vec::with_capacity(chunk.len() * per_image);
        let mut failed = 0;
        for (i, outcome) in decoded.into_iter().enumerate() {
            match outcome {
                Ok(p) => {
                    rows.push(offset + i);
                    pixels.extend_from_slice(&p);
                }
                Err(e) => {
                    failed += usize::from(chunk[i].is_some());
                    results[offset + i] = Some(Err(e));
                }
            }
        }
        progress::add_images(0, failed);
        let pending = if rows.is_empty() {
            None
        } else {
            let n = rows.len();
            let (device, dtype) = (model.device.clone(), model.dtype);
            let job = model.worker.submit(move |clip| -> PassResult {
                // Queued behind other passes: skip it if its query was
                // cancelled meanwhile.
                cancel.check()?;
                let run = || -> candle_core::Result<Vec<f32>> {
                    let x = Tensor::from_vec(pixels, (n, 3, size, size), &Device::Cpu)?
                        .to_device(&device)?
                        .to_dtype(dtype)?;
                    to_host_f32(&clip.encode_image(&x)?)
                };
                run().map_err(|e| format!("image encoder failed: {e}"))
            })?;
            Some((rows, job))
        };
        if let Some((rows, job)) = in_flight.take() {
            scatter(&mut results, &rows, job.wait()??, dim)?;
        }
        in_flight = pending;
    }
    if let Some((rows, job)) = in_flight.take() {
        scatter(&mut results, &rows, job.wait()??, dim)?;
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ImageError("image was not processed".to_string()))))
        .collect())
}

fn scatter(
    results: &mut [Option<Result<Vec<f32>, ImageError>>],
    rows: &[usize],
    values: Vec<f32>,
    dim: usize,
) -> Result<(), String> {
    if values.len() != rows.len() * dim {
        return Err(format!(
            "image encoder returned {} values for {} images of dimension {dim}",
            values.len(),
            rows.len()
        ));
    }
    for (row, embedding) in rows.iter().zip(values.chunks_exact(dim)) {
        results[*row] = Some(Ok(embedding.to_vec()));
    }
    progress::add_images(rows.len(), 0);
    Ok(())
}

/// Embed prompts (already formatted), normalised, in input order.
pub fn embed_texts(
    model: &LoadedModel,
    prompts: &[String],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>, String> {
    let tokenizer = ClipTokenizer::shared();
    let tokens: Vec<Tokens> = prompts
        .iter()
        .map(|p| tokenizer.tokenize(p, model.context_length))
        .collect();
    // Passes of similar length pad less: sort by length, then put back.
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    order.sort_by_key(|&i| tokens[i].ids.len());
    let dim = model.embed_dim;
    let mut out = vec![Vec::new(); tokens.len()];
    let cancel = CancelCheck::now();
    wait_off_runtime(|| -> Result<(), String> {
        for chunk in order.chunks(batch_size.max(1)) {
            cancel.check()?;
            let batch: Vec<Tokens> = chunk.iter().map(|&i| tokens[i].clone()).collect();
            let device = model.device.clone();
            let values = model.worker.run(move |clip| -> PassResult {
                cancel.check()?;
                let run = || to_host_f32(&clip.encode_text(&batch, &device)?);
                run().map_err(|e| format!("text encoder failed: {e}"))
            })??;
            if values.len() != chunk.len() * dim {
                return Err(format!(
                    "text encoder returned {} values for {} prompts of dimension {dim}",
                    values.len(),
                    chunk.len()
                ));
            }
            for (&i, embedding) in chunk.iter().zip(values.chunks_exact(dim)) {
                out[i] = embedding.to_vec();
            }
            progress::add_prompts(chunk.len());
        }
        Ok(())
    })?;
    Ok(out)
}

/// Copy a (rows, dim) tensor to host f32 with each row L2-normalised.
/// Normalising in f32 on the host keeps half-precision models from
/// rounding the norm.
fn to_host_f32(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    let (_, dim) = t.dims2()?;
    let mut values = t
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    for row in values.chunks_exact_mut(dim) {
        normalize_in_place(row);
    }
    Ok(values)
}

/// Scale `v` to unit length; a zero vector stays zero.
pub fn normalize_in_place(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
