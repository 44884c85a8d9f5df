//! Multi-head self-attention on the CPU straight from the packed q/k/v
//! projection: one task per image, heads read and written in place.
//!
//! With candle's ops, attention splits q, k and v into (batch, heads,
//! tokens, head_dim) copies, runs batched matrix products, upcasts, adds the
//! mask, takes a softmax and merges the heads back: seven passes, most of
//! them on one core. Here each image's heads are
//! two small `gemm` calls over strided views of `qkv` and one softmax over a
//! scratch buffer the size of one head's scores, and the output rows are
//! written where the merged tensor keeps them.

use candle_core::{Device, Result, Tensor, bail};
use rayon::prelude::*;

use super::gemm::{self, View};
use super::storage::storage_f32;

/// `softmax(q kᵀ + mask) v` for every head. `qkv`: (batch, tokens,
/// 3·width), f32 on the CPU, q already scaled by `head_dim^-½`, heads
/// contiguous within each of q, k and v; `mask`: additive (tokens, tokens).
/// Returns (batch, tokens, width) with the heads side by side.
pub fn attention(qkv: &Tensor, heads: usize, mask: Option<&Tensor>) -> Result<Tensor> {
    let qkv = qkv.contiguous()?;
    let (b, t, packed) = qkv.dims3()?;
    if heads == 0 || packed % (3 * heads) != 0 {
        bail!("attention: {packed} packed q/k/v features do not split into 3 x {heads} heads")
    }
    let width = packed / 3;
    let head_dim = width / heads;
    let mask = mask.map(Tensor::contiguous).transpose()?;
    if let Some(mask) = &mask
        && mask.dims() != [t, t]
    {
        bail!("attention: a {:?} mask for {t} tokens", mask.dims())
    }

    let (qkv_storage, qkv_layout) = qkv.storage_and_layout();
    let values = storage_f32(&qkv_storage, qkv_layout, "attention q/k/v")?;
    let mask_guard = mask.as_ref().map(|m| m.storage_and_layout());
    let mask_values = match &mask_guard {
        Some((s, l)) => Some(storage_f32(s, l, "attention mask")?),
        None => None,
    };

    let mut out = vec![0f32; b * t * width];
    if t > 0 && width > 0 {
        out.par_chunks_mut(t * width)
            .zip(values.par_chunks(t * packed))
            .try_for_each(|(image_out, image_qkv)| {
                let mut scores = vec![0f32; t * t];
                (0..heads).try_for_each(|head| {
                    let shape = AttentionShape {
                        t,
                        width,
                        head_dim,
                        head,
                    };
                    attend_one_head(image_qkv, image_out, &mut scores, mask_values, shape)
                })
            })?;
    }
    drop((qkv_storage, mask_guard));
    Tensor::from_vec(out, (b, t, width), &Device::Cpu)
}

#[derive(Clone, Copy)]
struct AttentionShape {
    t: usize,
    width: usize,
    head_dim: usize,
    head: usize,
}

/// One head of one image: `scores = q kᵀ (+ mask)`, softmax by row, then
/// `out[:, head] = scores v`.
fn attend_one_head(
    image_qkv: &[f32],
    image_out: &mut [f32],
    scores: &mut [f32],
    mask: Option<&[f32]>,
    shape: AttentionShape,
) -> Result<()> {
    let AttentionShape {
        t,
        width,
        head_dim,
        head,
    } = shape;
    let row = 3 * width;
    let q = head * head_dim;
    let k = width + head * head_dim;
    let v = 2 * width + head * head_dim;
    // q (t x head_dim) times kᵀ (k read by columns): the scores.
    gemm::matmul(
        (t, t, head_dim),
        scores,
        View::rows(0, t),
        image_qkv,
        View::rows(q, row),
        image_qkv,
        View::columns(k, row),
        false,
        1,
    )?;
    for (i, scores_row) in scores.chunks_mut(t).enumerate() {
        if let Some(mask) = mask {
            for (s, m) in scores_row.iter_mut().zip(&mask[i * t..(i + 1) * t]) {
                *s += m;
            }
        }
        softmax_in_place(scores_row);
    }
    // The probabilities times v, into this head's columns of the output.
    gemm::matmul(
        (t, head_dim, t),
        image_out,
        View::rows(q, width),
        scores,
        View::rows(0, t),
        image_qkv,
        View::rows(v, row),
        false,
        1,
    )
}

/// `e^(x - max) / Σ e^(x - max)` over one row. A row always keeps a finite
/// entry (the causal mask leaves the diagonal), so `max` is finite.
fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inverse = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inverse;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::attention::{causal_mask, with_candle_ops};
    use crate::test_support::max_abs_diff;

    #[test]
    fn equals_attention_with_candle_ops() {
        let dev = Device::Cpu;
        let (b, t, heads, head_dim) = (3, 7, 4, 5);
        let qkv = Tensor::randn(0f32, 1.0, (b, t, 3 * heads * head_dim), &dev).unwrap();
        let mask = causal_mask(t, &dev).unwrap();
        for mask in [None, Some(&mask)] {
            let fused = attention(&qkv, heads, mask).unwrap();
            let reference = with_candle_ops(&qkv, heads, mask).unwrap();
            assert_eq!(fused.dims(), &[b, t, heads * head_dim]);
            let diff = max_abs_diff(&fused, &reference);
            assert!(diff < 1e-5, "max difference {diff}");
        }
    }

    #[test]
    fn shapes_that_do_not_split_are_errors() {
        let dev = Device::Cpu;
        let qkv = Tensor::zeros((1, 4, 30), candle_core::DType::F32, &dev).unwrap();
        let err = attention(&qkv, 4, None).unwrap_err().to_string();
        assert!(
            err.contains("30 packed q/k/v features do not split into 3 x 4 heads"),
            "{err}"
        );
        let mask = causal_mask(5, &dev).unwrap();
        let err = attention(&qkv, 2, Some(&mask)).unwrap_err().to_string();
        assert!(err.contains("a [5, 5] mask for 4 tokens"), "{err}");
    }
}
