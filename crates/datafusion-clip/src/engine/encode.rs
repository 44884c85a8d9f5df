//! Images and prompts in, L2-normalised embeddings out: the joint between
//! preprocessing (CPU, rayon) and the model thread.
//!
//! A call is cut into chunks of `batch_size` images, or of a share of it
//! when several partitions feed the same model ([`chunk_size`]). While the
//! model thread runs chunk k (possibly in one pass with other partitions'
//! rows), the calling thread decodes chunk k + 1, so decoding hides behind
//! compute. Images travel to the model thread as 8-bit RGB crops and are
//! normalised on the device.

use std::sync::Arc;
use std::time::Instant;

use clip_model::embed::encode_prompts;
use clip_model::{ClipTokenizer, ComputeError, ImageError, Preprocessor, Tokens};

use super::cancel::CancelCheck;
use super::error::EngineError;
use super::model_cache::LoadedModel;
use super::worker::{EmbeddingsResult, Pending, wait_off_runtime};
use super::{progress, stage_clock};
use crate::config::ClipOptions;

/// Embeddings of one forward pass, row-major (rows x dim), normalised.
type PassResult = Result<Vec<f32>, EngineError>;

/// Embed encoded images. One entry per input in input order: the
/// normalised embedding, or why the image could not be used (NULL input,
/// undecodable bytes). `Err` of the whole call means the model failed.
/// `clip.batch_size` images go in one forward pass; `clip.max_image_pixels`
/// bounds what is decoded.
pub fn embed_images(
    model: &LoadedModel,
    images: &[Option<&[u8]>],
    options: &ClipOptions,
) -> Result<Vec<Result<Vec<f32>, ImageError>>, EngineError> {
    let preprocessor = model.preprocessor.with_max_pixels(options.max_image_pixels);
    let cancel = CancelCheck::now();
    wait_off_runtime(|| {
        embed_images_blocking(
            model,
            &preprocessor,
            images,
            options.batch_size_on(&model.device).max(1),
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
) -> Result<Vec<Result<Vec<f32>, ImageError>>, EngineError> {
    let dim = model.embed_dim;
    let size = preprocessor.size;
    let mut results: Vec<Option<Result<Vec<f32>, ImageError>>> = vec![None; images.len()];
    let mut in_flight: Option<(Vec<usize>, Pending<EmbeddingsResult>)> = None;
    // While registered, the model thread may hold a partial pass a moment
    // for this call's next rows.
    let _caller = model.worker.image_caller();

    let mut offset = 0;
    while offset < images.len() {
        cancel.check()?;
        // With several partitions feeding one model, each submits smaller
        // chunks that the model thread joins back into full passes: the
        // first pass starts sooner and every partition decodes while it runs.
        let chunk_rows = chunk_size(batch_size, model.worker.image_callers());
        let chunk = &images[offset..(offset + chunk_rows).min(images.len())];
        let started = Instant::now();
        let decoded = preprocessor.resized_rgb_batch(chunk);
        let mut rows = Vec::new();
        let mut rgb = Vec::with_capacity(chunk.len() * size * size * 3);
        let mut failed = 0;
        for (i, outcome) in decoded.into_iter().enumerate() {
            match outcome {
                Ok(crop) => {
                    rows.push(offset + i);
                    rgb.extend_from_slice(&crop);
                }
                Err(e) => {
                    failed += usize::from(chunk[i].is_some());
                    results[offset + i] = Some(Err(e));
                }
            }
        }
        stage_clock::add_decode(started);
        progress::add_images(0, failed);
        let pending = if rows.is_empty() {
            None
        } else {
            let job =
                model
                    .worker
                    .submit_images(rgb, rows.len(), size, batch_size, cancel.clone())?;
            Some((rows, job))
        };
        // This chunk is queued; collect the previous one, whose pass ran
        // while this chunk was decoded.
        if let Some((rows, job)) = in_flight.take() {
            scatter(&mut results, &rows, job.wait()??, dim)?;
        }
        in_flight = pending;
        offset += chunk.len();
    }
    if let Some((rows, job)) = in_flight.take() {
        scatter(&mut results, &rows, job.wait()??, dim)?;
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Err(ImageError::NotProcessed)))
        .collect())
}

/// Rows one caller decodes and submits at a time: a share of the batch
/// size when `callers` feed the model together (at least 8 rows, so
/// per-chunk overheads stay small), the whole batch size when alone.
pub fn chunk_size(batch_size: usize, callers: usize) -> usize {
    let batch_size = batch_size.max(1);
    (batch_size / callers.max(1)).clamp(batch_size.min(8), batch_size)
}

fn scatter(
    results: &mut [Option<Result<Vec<f32>, ImageError>>],
    rows: &[usize],
    values: Vec<f32>,
    dim: usize,
) -> Result<(), EngineError> {
    if values.len() != rows.len() * dim {
        return Err(EngineError::WrongOutputSize {
            tower: "image",
            what: "images",
            values: values.len(),
            rows: rows.len(),
            dim,
        });
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
) -> Result<Vec<Vec<f32>>, EngineError> {
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
    wait_off_runtime(|| -> Result<(), EngineError> {
        for chunk in order.chunks(batch_size.max(1)) {
            cancel.check()?;
            let batch: Vec<Tokens> = chunk.iter().map(|&i| tokens[i].clone()).collect();
            let device = model.device.clone();
            let cancel = cancel.clone();
            let values = model.worker.run(move |clip| -> PassResult {
                cancel.check()?;
                let run = || encode_prompts(clip, &batch, &device);
                run().map_err(|e| EngineError::Encoder {
                    tower: "text",
                    source: Arc::new(ComputeError::from(e)),
                })
            })??;
            if values.len() != chunk.len() * dim {
                return Err(EngineError::WrongOutputSize {
                    tower: "text",
                    what: "prompts",
                    values: values.len(),
                    rows: chunk.len(),
                    dim,
                });
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

#[cfg(test)]
mod tests {
    use super::chunk_size;

    #[test]
    fn chunks_shrink_with_callers_but_not_below_eight_rows() {
        assert_eq!(chunk_size(256, 0), 256);
        assert_eq!(chunk_size(256, 1), 256);
        assert_eq!(chunk_size(256, 16), 16);
        assert_eq!(chunk_size(32, 16), 8);
        assert_eq!(chunk_size(4, 16), 4);
        assert_eq!(chunk_size(0, 3), 1);
    }
}
