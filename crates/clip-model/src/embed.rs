//! The tensor end of both paths, from inputs ready for a tower to
//! embeddings on the host: a batch of RGB crops (bytes, as the decoder
//! left them) goes to the device, is normalised there and encoded; a batch
//! of prompts is encoded; either comes back as f32 rows of unit length.
//! The engine that batches work for a model calls these and nothing lower.

use candle_core::{DType, Device, Result, Tensor};

use crate::clip::ClipModel;
use crate::image::{CLIP_MEAN, CLIP_STD};
use crate::text::Tokens;

/// Embed `rows` RGB crops of `size`×`size` (interleaved bytes, row after
/// row): bytes go to the device as they are (a quarter of the f32 size),
/// are normalised there with CLIP's mean and std in f32, then cast to the
/// model's dtype. Rows come back L2-normalised.
pub fn encode_rgb(
    model: &ClipModel,
    device: &Device,
    dtype: DType,
    rgb: &[u8],
    rows: usize,
    size: usize,
) -> Result<Vec<f32>> {
    let x = Tensor::from_slice(rgb, (rows, size, size, 3), &Device::Cpu)?.to_device(device)?;
    let pixels = normalise_on_device(&x)?.to_dtype(dtype)?;
    embeddings_to_host(&model.encode_image(&pixels)?)
}

/// Embed `prompts` on `device`; rows come back L2-normalised.
pub fn encode_prompts(model: &ClipModel, prompts: &[Tokens], device: &Device) -> Result<Vec<f32>> {
    embeddings_to_host(&model.encode_text(prompts, device)?)
}

/// (n, h, w, 3) bytes to (n, 3, h, w) f32 normalised as CLIP's
/// preprocessing does: `(v / 255 - mean) / std`, in that order and in f32,
/// so the result equals the CPU preprocessing's bit for bit.
pub fn normalise_on_device(rgb: &Tensor) -> Result<Tensor> {
    let device = rgb.device();
    let mean = Tensor::from_slice(&CLIP_MEAN, (1, 3, 1, 1), device)?;
    let std = Tensor::from_slice(&CLIP_STD, (1, 3, 1, 1), device)?;
    let full_scale = Tensor::new(255f32, device)?;
    rgb.to_dtype(DType::F32)?
        .permute((0, 3, 1, 2))?
        .broadcast_div(&full_scale)?
        .broadcast_sub(&mean)?
        .broadcast_div(&std)?
        .contiguous()
}

/// Copy a (rows, dim) tensor to host f32 with each row L2-normalised.
/// Normalising in f32 on the host keeps half-precision models from
/// rounding the norm.
pub fn embeddings_to_host(t: &Tensor) -> Result<Vec<f32>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_back_unit_length_and_zero_stays_zero() {
        let t = Tensor::from_vec(vec![3f32, 4.0, 0.0, 0.0], (2, 2), &Device::Cpu).unwrap();
        assert_eq!(embeddings_to_host(&t).unwrap(), [0.6, 0.8, 0.0, 0.0]);
    }
}
