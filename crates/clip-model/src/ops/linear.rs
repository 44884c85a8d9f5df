//! A linear layer with what follows it fused in: `activation(x Wᵀ + b +
//! residual)`, the shape of every product in the CLIP towers (the encoder's
//! projections and MLP, the ResNets' convolutions as products).

use candle_core::{Module, Result, Tensor};
use candle_nn::Linear;

use super::epilogue::EpilogueActivation;
use super::{cpu, cuda, quick_gelu};

/// `activation(x Wᵀ + b + residual)` on the fastest path for `x`: cuBLAS
/// and one fused pass on CUDA, one `gemm` call with the bias and residual
/// in its destination on the CPU in f32, else candle's ops.
pub fn linear(
    x: &Tensor,
    layer: &Linear,
    residual: Option<&Tensor>,
    activation: EpilogueActivation,
) -> Result<Tensor> {
    if cuda::runs_linear(x, layer) {
        return cuda::linear(x, layer, residual, activation);
    }
    if cpu::runs(x) {
        return cpu::linear::product(x, layer.weight(), layer.bias(), residual, activation);
    }
    let y = layer.forward(x)?;
    let y = match residual {
        Some(residual) => (residual + y)?,
        None => y,
    };
    match activation {
        EpilogueActivation::Identity => Ok(y),
        EpilogueActivation::QuickGelu => quick_gelu(&y),
        EpilogueActivation::Relu => y.relu(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn max_relative_error(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
            .fold(0.0, f32::max)
    }

    fn layer(n: usize, k: usize, bias: bool) -> Linear {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.2, (n, k), &dev).unwrap();
        let b = bias.then(|| Tensor::randn(0f32, 1.0, n, &dev).unwrap());
        Linear::new(w, b)
    }

    #[test]
    fn equals_candle_linear_then_residual() {
        let dev = Device::Cpu;
        for bias in [true, false] {
            let layer = layer(37, 19, bias);
            let x = Tensor::randn(0f32, 1.0, (3, 5, 19), &dev).unwrap();
            let residual = Tensor::randn(0f32, 1.0, (3, 5, 37), &dev).unwrap();
            let reference = (&residual + layer.forward(&x).unwrap()).unwrap();
            let fused = linear(&x, &layer, Some(&residual), EpilogueActivation::Identity).unwrap();
            assert_eq!(fused.dims(), &[3, 5, 37]);
            assert!(max_relative_error(&fused, &reference) < 1e-5);
            let fused = linear(&x, &layer, None, EpilogueActivation::Identity).unwrap();
            assert!(max_relative_error(&fused, &layer.forward(&x).unwrap()) < 1e-5);
        }
    }

    #[test]
    fn a_layer_without_inputs_gives_its_bias() {
        let dev = Device::Cpu;
        let bias = Tensor::new(&[1f32, -2., 3.], &dev).unwrap();
        let layer = Linear::new(Tensor::zeros((3, 0), DType::F32, &dev).unwrap(), Some(bias));
        let x = Tensor::zeros((2, 0), DType::F32, &dev).unwrap();
        let y = linear(&x, &layer, None, EpilogueActivation::Identity).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), [[1., -2., 3.], [1., -2., 3.]]);
    }

    #[test]
    fn quick_gelu_after_the_product_equals_the_composition() {
        let dev = Device::Cpu;
        let layer = layer(64, 48, true);
        // A transposed (strided) input is made contiguous first.
        let x = Tensor::randn(0f32, 1.0, (48, 10), &dev)
            .unwrap()
            .t()
            .unwrap();
        let reference = quick_gelu(&layer.forward(&x).unwrap()).unwrap();
        let fused = linear(&x, &layer, None, EpilogueActivation::QuickGelu).unwrap();
        assert!(max_relative_error(&fused, &reference) < 1e-5);
    }

    #[test]
    fn half_precision_takes_candles_ops_and_mismatches_are_errors() {
        let dev = Device::Cpu;
        let layer32 = layer(8, 4, true);
        let x = Tensor::randn(0f32, 1.0, (2, 4), &dev).unwrap();
        let half = Linear::new(
            layer32.weight().to_dtype(DType::BF16).unwrap(),
            layer32.bias().map(|b| b.to_dtype(DType::BF16).unwrap()),
        );
        let identity = EpilogueActivation::Identity;
        let y = linear(&x.to_dtype(DType::BF16).unwrap(), &half, None, identity).unwrap();
        assert_eq!(y.dtype(), DType::BF16);
        let relu = linear(
            &x.to_dtype(DType::BF16).unwrap(),
            &half,
            None,
            EpilogueActivation::Relu,
        )
        .unwrap();
        let expected = y.relu().unwrap();
        assert_eq!(
            relu.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap(),
            expected
                .to_dtype(DType::F32)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()
        );
        let err = linear(
            &Tensor::zeros((2, 5), DType::F32, &dev).unwrap(),
            &layer32,
            None,
            identity,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("does not end in the weight's 4 inputs"),
            "{err}"
        );
        let wrong_residual = Tensor::zeros((3, 8), DType::F32, &dev).unwrap();
        let err = linear(&x, &layer32, Some(&wrong_residual), identity)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("residual of 24 elements for a 2x8 output"),
            "{err}"
        );
    }
}
