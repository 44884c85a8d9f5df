//! QuickGELU, `x · σ(1.702 x)`, the activation of OpenAI's CLIP towers.
//!
//! Written with candle's ops it is three passes over the MLP's widest
//! tensor (scale, sigmoid, multiply), each on one core. On the CPU in f32
//! it is one vectorised pass over all cores instead ([`super::cpu::quick_gelu`];
//! fused into `fc1`'s product by [`super::linear()`]); on CUDA it is part of the
//! linear layer's epilogue kernel; elsewhere it stays the composition of
//! candle's kernels.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};

use super::cpu;

/// `x · σ(1.702 x)`.
pub fn quick_gelu(xs: &Tensor) -> Result<Tensor> {
    if cpu::runs(xs) {
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
        cpu::quick_gelu::quick_gelu_in_place(&mut output);
        Ok((CpuStorage::F32(output), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
