//! QuickGELU on the CPU: one vectorised pass over all cores, in place (on
//! `fc1`'s product, or on a copy for [`crate::ops::quick_gelu()`]).

use rayon::prelude::*;

/// Elements per rayon task: large enough that scheduling is noise, small
/// enough that both cores get work on a batch-1 tensor (50 x 3072).
const CHUNK: usize = 16 * 1024;

/// QuickGELU over `values` in place, on all cores (also the fused CPU
/// `fc1`).
pub fn quick_gelu_in_place(values: &mut [f32]) {
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
}
