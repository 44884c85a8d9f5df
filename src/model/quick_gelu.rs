//! QuickGELU, `x · σ(1.702 x)`, the activation of OpenAI's CLIP towers.
//!
//! Written with candle's ops it is three passes over the MLP's widest
//! tensor (scale, sigmoid, multiply), each on one core: 14.5% of a CPU
//! ViT-B/32 pass. On the CPU this is one vectorised pass over all cores
//! instead (in place on `fc1`'s output: `cpu_linear.rs`); on other devices
//! it stays the composition of candle's kernels.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Elements per rayon task: large enough that scheduling is noise, small
/// enough that both cores get work on a batch-1 tensor (50 x 3072).
const CHUNK: usize = 16 * 1024;

/// `x · σ(1.702 x)`.
pub fn quick_gelu(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == DType::F32 {
        xs.contiguous()?.apply_op1_no_bwd(&QuickGeluCpu)
    } else {
        xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?
    }
}

struct QuickGeluCpu;

impl CustomOp1 for QuickGeluCpu {
    fn name(&self) -> &'static str {
        "quick-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(values) = storage else {
            bail!("quick-gelu: f32 only")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("quick-gelu: the input must be contiguous")
        };
        let input = &values[start..end];
        let mut output = input.to_vec();
        quick_gelu_in_place(&mut output);
        Ok((CpuStorage::F32(output), layout.shape().clone()))
    }
}

/// QuickGELU over `values` in place, on all cores (also the fused CPU
/// `fc1`).
pub(crate) fn quick_gelu_in_place(values: &mut [f32]) {
    values.par_chunks_mut(CHUNK).for_each(quick_gelu_chunk);
}

fn quick_gelu_chunk(values: &mut [f32]) {
    // libm's `expf` is a scalar call per element (a fifth of a CPU fc1
    // layer's time); the polynomial below is plain arithmetic the compiler
    // vectorises, eight lanes at a time with AVX2.
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { quick_gelu_chunk_avx2(values) };
        return;
    }
    quick_gelu_chunk_portable(values);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quick_gelu_chunk_avx2(values: &mut [f32]) {
    quick_gelu_chunk_portable(values);
}

#[inline(always)]
fn quick_gelu_chunk_portable(values: &mut [f32]) {
    for x in values {
        *x = quick_gelu_f32(*x);
    }
}

/// `x · 1/(1 + e^(-1.702x))`. Where the exponential overflows the quotient
/// is -0, as the composition of candle's ops gives.
#[inline(always)]
fn quick_gelu_f32(x: f32) -> f32 {
    x / (1.0 + exp_f32(-1.702 * x))
}

/// `e^x` within 2 ulp for finite results; +inf above ~88.4, ~1e-38 (not
/// 0) below -87. Cephes' `expf`: x = n·ln 2 + r with |r| ≤ ln 2 / 2, a
/// degree-6 polynomial for e^r, and 2^n built in the exponent bits. No
/// branches, no calls: the loops around it vectorise.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n·LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 89.0);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // n ∈ [-126, 128]: 2^n's exponent bits (n = 128 gives +inf).
    let biased = ((n as i32) + 127).clamp(0, 255) as u32;
    e_r * f32::from_bits(biased << 23)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn polynomial_exp_is_within_a_few_ulp_of_libm() {
        let mut worst = 0f32;
        for i in -870_000..=880_000 {
            let x = i as f32 / 10_000.0;
            let (ours, libm) = (exp_f32(x), x.exp());
            worst = worst.max((ours - libm).abs() / libm);
        }
        assert!(worst < 3.0 * f32::EPSILON, "relative error {worst}");
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert!(exp_f32(-1000.0) < 1e-37 && exp_f32(f32::NEG_INFINITY) >= 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(quick_gelu_f32(f32::NAN).is_nan());
    }

    #[test]
    fn matches_the_composition_of_candle_ops() {
        let values: Vec<f32> = (0..40_000)
            .map(|i| (i as f32 - 20_000.0) / 997.0)
            .chain([0.0, -0.0, 1e-30, -90.0, 90.0, f32::MAX, f32::MIN])
            .collect();
        let xs = Tensor::from_vec(values.clone(), (values.len(),), &Device::Cpu).unwrap();
        let fused = quick_gelu(&xs).unwrap().to_vec1::<f32>().unwrap();
        let composed = (&xs * candle_nn::ops::sigmoid(&(&xs * 1.702).unwrap()).unwrap())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for ((x, a), b) in values.iter().zip(&fused).zip(&composed) {
            let tolerance = 1e-6 * b.abs().max(1.0);
            assert!((a - b).abs() <= tolerance, "x={x}: fused {a}, composed {b}");
        }
        // A strided view (a transpose) is made contiguous first.
        let m = Tensor::from_vec(values[..40_000].to_vec(), (200, 200), &Device::Cpu).unwrap();
        let t = m.t().unwrap();
        let fused = quick_gelu(&t).unwrap().to_vec2::<f32>().unwrap();
        let composed = (&t * candle_nn::ops::sigmoid(&(&t * 1.702).unwrap()).unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(fused.len(), composed.len());
        for (ra, rb) in fused.iter().zip(&composed) {
            for (a, b) in ra.iter().zip(rb) {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }
}
