//! Multi-head self-attention over the packed q/k/v projection (batch,
//! tokens, 3·width), q already scaled by `head_dim^-½`: softmax(q kᵀ +
//! mask) v for every head, the heads merged back to (batch, tokens, width).

use candle_core::{DType, Device, Result, Tensor};

use super::{cpu, cuda};

/// Attention on the fastest path for `qkv`: heads read in place by one
/// task per image on the CPU in f32, one fused kernel on CUDA, else
/// candle's ops. `mask`: additive f32 (tokens, tokens).
pub fn attention(qkv: &Tensor, heads: usize, mask: Option<&Tensor>) -> Result<Tensor> {
    if cpu::runs(qkv) {
        return cpu::attention::attention(qkv, heads, mask);
    }
    if cuda::runs_attention(qkv, heads) {
        return cuda::attention(qkv, heads, mask);
    }
    with_candle_ops(qkv, heads, mask)
}

/// Additive causal mask: position `i` sees positions `0..=i`.
pub fn causal_mask(tokens: usize, device: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..tokens)
        .flat_map(|i| (0..tokens).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (tokens, tokens), device)
}

/// Attention with candle's ops, on any device and dtype: split the heads,
/// attend, merge. The reference the fused implementations are tested
/// against.
pub fn with_candle_ops(qkv: &Tensor, heads: usize, mask: Option<&Tensor>) -> Result<Tensor> {
    let (b, t, packed) = qkv.dims3()?;
    let width = packed / 3;
    let head_dim = width / heads.max(1);
    // (b, t, 3, heads, head_dim): q, k, v each (b, heads, t, head_dim).
    let qkv = qkv.contiguous()?.reshape((b, t, 3, heads, head_dim))?;
    let split = |i: usize| {
        qkv.narrow(2, i, 1)?
            .squeeze(2)?
            .transpose(1, 2)?
            .contiguous()
    };
    let out = attend_in_slices(&split(0)?, &split(1)?, &split(2)?, mask, MAX_SCORE_ELEMENTS)?;
    out.transpose(1, 2)?.reshape((b, t, width))
}

/// GPU kernels index the score tensor with 32-bit integers: keep each piece
/// under 2^31 elements (ViT-L/14@336px reaches that at ~400 images).
const MAX_SCORE_ELEMENTS: usize = i32::MAX as usize;

/// [`attend`] over slices of the batch whose score tensors (batch x heads x
/// tokens x tokens) stay within `max_score_elements`.
fn attend_in_slices(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    max_score_elements: usize,
) -> Result<Tensor> {
    let (b, heads, t, _) = q.dims4()?;
    let rows = (max_score_elements / (heads * t * t).max(1)).max(1);
    if b <= rows {
        return attend(q, k, v, mask);
    }
    let mut parts = Vec::with_capacity(b.div_ceil(rows));
    for start in (0..b).step_by(rows) {
        let n = rows.min(b - start);
        parts.push(attend(
            &q.narrow(0, start, n)?,
            &k.narrow(0, start, n)?,
            &v.narrow(0, start, n)?,
            mask,
        )?);
    }
    Tensor::cat(&parts, 0)
}

/// softmax(q kᵀ + mask) v for (batch, heads, tokens, head_dim) tensors.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let scores = q.matmul(&k.t()?)?;
    // Softmax in f32 whatever the model's dtype: half-precision scores
    // lose the small differences that decide attention.
    let in_dtype = scores.dtype();
    let mut scores = scores.to_dtype(DType::F32)?;
    if let Some(mask) = mask {
        scores = scores.broadcast_add(mask)?;
    }
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(in_dtype)?;
    probs.matmul(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::max_abs_diff;

    #[test]
    fn attention_in_slices_equals_attention_at_once() {
        let dev = Device::Cpu;
        let (b, h, t, d) = (7, 2, 5, 4);
        let q = Tensor::randn(0f32, 1., (b, h, t, d), &dev).unwrap();
        let k = Tensor::randn(0f32, 1., (b, h, t, d), &dev).unwrap();
        let v = Tensor::randn(0f32, 1., (b, h, t, d), &dev).unwrap();
        let mask = causal_mask(t, &dev).unwrap();
        let whole = attend(&q, &k, &v, Some(&mask)).unwrap();
        // Room for 3 images' scores per slice: slices of 3, 3 and 1.
        let sliced = attend_in_slices(&q, &k, &v, Some(&mask), 3 * h * t * t).unwrap();
        assert_eq!(max_abs_diff(&sliced, &whole), 0.0);
    }

    #[test]
    fn every_path_gives_the_same_attention() {
        let dev = Device::Cpu;
        let (b, t, heads, head_dim) = (2, 6, 2, 8);
        let qkv = Tensor::randn(0f32, 1.0, (b, t, 3 * heads * head_dim), &dev).unwrap();
        let mask = causal_mask(t, &dev).unwrap();
        let reference = with_candle_ops(&qkv, heads, Some(&mask)).unwrap();
        // f32 on the CPU takes the fused path; bf16 takes candle's ops.
        let fused = attention(&qkv, heads, Some(&mask)).unwrap();
        assert!(max_abs_diff(&fused, &reference) < 1e-5);
        let half = attention(&qkv.to_dtype(DType::BF16).unwrap(), heads, Some(&mask))
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        assert!(max_abs_diff(&half, &reference) < 0.05);
    }
}
