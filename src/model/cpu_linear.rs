//! The encoder's linear layers on the CPU as one matrix product each: the
//! destination starts as the bias (plus the residual, where the layer's
//! output is added to one) and `gemm` accumulates `x Wᵀ` into it.
//!
//! candle's `Linear` is a matrix product followed by a broadcast bias
//! addition, and the encoder then adds the residual: two more passes over
//! the output, each on one core (6% of a CPU ViT-B/32 pass). Here they cost
//! one parallel fill of the destination; QuickGELU after `fc1` runs in place
//! on the product. On other devices, and for half precision (which `gemm`
//! has no fast kernels for on the CPU), the layers stay candle's ops.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, Layout, Module, Result, Storage, Tensor, bail};
use candle_nn::Linear;
use rayon::prelude::*;

use super::cpu_gemm::{self, View};
use super::epilogue::EpilogueActivation;
use super::quick_gelu;

/// `x Wᵀ + b`, plus `residual` when given (same shape as the output).
pub fn linear_add(x: &Tensor, layer: &Linear, residual: Option<&Tensor>) -> Result<Tensor> {
    if runs_fused(x) {
        let (w, b) = (layer.weight(), layer.bias());
        return product(x, w, b, residual, EpilogueActivation::Identity);
    }
    let y = layer.forward(x)?;
    match residual {
        Some(residual) => residual + y,
        None => Ok(y),
    }
}

/// `QuickGELU(x Wᵀ + b)`.
pub fn linear_quick_gelu(x: &Tensor, layer: &Linear) -> Result<Tensor> {
    if runs_fused(x) {
        let (w, b) = (layer.weight(), layer.bias());
        return product(x, w, b, None, EpilogueActivation::QuickGelu);
    }
    quick_gelu::quick_gelu(&layer.forward(x)?)
}

/// Whether `x` takes the fused path: f32 on the CPU.
pub(crate) fn runs_fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// The f32 elements of a contiguous CPU tensor's storage, in layout order.
pub(crate) fn f32_values<'a>(
    storage: &'a Storage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    let Storage::Cpu(cpu) = storage else {
        bail!("{what}: expected a CPU tensor")
    };
    cpu_f32_values(cpu, layout, what)
}

/// [`f32_values`] of a custom op's CPU operand.
pub(crate) fn cpu_f32_values<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [f32]> {
    if storage.dtype() != DType::F32 {
        bail!("{what}: expected f32, not {:?}", storage.dtype())
    }
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{what}: expected a contiguous tensor")
    };
    match storage.as_slice::<f32>()?.get(start..end) {
        Some(values) => Ok(values),
        None => bail!("{what}: layout outside its storage"),
    }
}

/// The dims of `x Wᵀ` for `x` (..., k) and `weight` (n, k): `x`'s with the
/// last one n.
pub(crate) fn product_dims(x: &Tensor, weight: &Tensor) -> Result<Vec<usize>> {
    let (n, k) = weight.dims2()?;
    let mut dims = x.dims().to_vec();
    match dims.last_mut() {
        Some(last) if *last == k => *last = n,
        _ => bail!(
            "linear: input {:?} does not end in the weight's {k} inputs",
            x.dims()
        ),
    }
    Ok(dims)
}

/// Elements per parallel task of the in-place ReLU.
const RELU_CHUNK: usize = 1 << 15;

/// `activation(x Wᵀ + bias + residual)`: one product (a `gemm` call per
/// core's block, [`cpu_gemm::matmul`]) into a destination that starts as
/// bias + residual, the activation in place after. `x` (..., k)
/// and `weight` (n, k) f32 on the CPU, `bias` (n), `residual` (..., n).
pub(crate) fn product(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    activation: EpilogueActivation,
) -> Result<Tensor> {
    let x = x.contiguous()?;
    let weight = weight.contiguous()?;
    let (n, k) = weight.dims2()?;
    let out_dims = product_dims(&x, &weight)?;
    let rows: usize = x.dims()[..x.rank() - 1].iter().product();
    let bias = bias.map(Tensor::contiguous).transpose()?;
    let residual = residual.map(Tensor::contiguous).transpose()?;

    let (x_storage, x_layout) = x.storage_and_layout();
    let (w_storage, w_layout) = weight.storage_and_layout();
    let xs = f32_values(&x_storage, x_layout, "linear input")?;
    let ws = f32_values(&w_storage, w_layout, "linear weight")?;
    let bias_guard = bias.as_ref().map(|b| b.storage_and_layout());
    let bs = match &bias_guard {
        Some((s, l)) => Some(f32_values(s, l, "linear bias")?),
        None => None,
    };
    let residual_guard = residual.as_ref().map(|r| r.storage_and_layout());
    let rs = match &residual_guard {
        Some((s, l)) => Some(f32_values(s, l, "residual")?),
        None => None,
    };
    let mut out = vec![0f32; rows * n];
    let epilogue = Epilogue {
        bias: bs,
        residual: rs,
        activation,
    };
    let threads = candle_core::utils::get_num_threads();
    product_into(&mut out, (rows, n, k), xs, ws, epilogue, threads)?;
    drop((x_storage, w_storage, bias_guard, residual_guard));
    Tensor::from_vec(out, out_dims, &Device::Cpu)
}

/// What follows a product in the same pass: `activation(· + bias +
/// residual)`, `bias` one value per output column, `residual` the output's
/// shape.
#[derive(Clone, Copy)]
pub(crate) struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub residual: Option<&'a [f32]>,
    pub activation: EpilogueActivation,
}

/// [`product`] on slices: `out` (rows x n) = `activation(xs Wᵀ + bias +
/// residual)` for `xs` (rows x k) and `ws` (n x k), row-major, `threads`
/// as in [`cpu_gemm::matmul`].
pub(crate) fn product_into(
    out: &mut [f32],
    (rows, n, k): (usize, usize, usize),
    xs: &[f32],
    ws: &[f32],
    epilogue: Epilogue<'_>,
    threads: usize,
) -> Result<()> {
    let (bs, rs) = (epilogue.bias, epilogue.residual);
    if out.len() != rows * n {
        bail!("linear: {} outputs for a {rows}x{n} product", out.len())
    }
    if bs.is_some_and(|b| b.len() != n) {
        bail!(
            "linear: bias of {} for {n} outputs",
            bs.map_or(0, <[f32]>::len)
        )
    }
    if rs.is_some_and(|r| r.len() != rows * n) {
        bail!(
            "linear: residual of {} elements for a {rows}x{n} output",
            rs.map_or(0, <[f32]>::len)
        )
    }

    // The destination's starting value, by rows (in parallel when the
    // product is): the product is added to it.
    let starts_filled = bs.is_some() || rs.is_some();
    let fill = |(r, row): (usize, &mut [f32])| match (rs.map(|rs| &rs[r * n..(r + 1) * n]), bs) {
        (Some(res), Some(b)) => {
            for ((o, &a), &c) in row.iter_mut().zip(res).zip(b) {
                *o = a + c;
            }
        }
        (Some(res), None) => row.copy_from_slice(res),
        (None, Some(b)) => row.copy_from_slice(b),
        (None, None) => {}
    };
    if starts_filled && n > 0 {
        match threads {
            0 | 1 => out.chunks_mut(n).enumerate().for_each(fill),
            _ => out.par_chunks_mut(n).enumerate().for_each(fill),
        }
    }
    // x (rows x k, row-major) times Wᵀ (W is n x k row-major, read by
    // columns).
    cpu_gemm::matmul(
        (rows, n, k),
        out,
        View::rows(0, n),
        xs,
        View::rows(0, k),
        ws,
        View::columns(0, k),
        starts_filled,
        threads,
    )?;
    match epilogue.activation {
        EpilogueActivation::Identity => {}
        EpilogueActivation::QuickGelu => quick_gelu::quick_gelu_in_place(out),
        EpilogueActivation::Relu => {
            let relu = |chunk: &mut [f32]| chunk.iter_mut().for_each(|v| *v = v.max(0.0));
            match threads {
                0 | 1 => relu(out),
                _ => out.par_chunks_mut(RELU_CHUNK).for_each(relu),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
            let fused = linear_add(&x, &layer, Some(&residual)).unwrap();
            assert_eq!(fused.dims(), &[3, 5, 37]);
            assert!(max_relative_error(&fused, &reference) < 1e-5);
            let fused = linear_add(&x, &layer, None).unwrap();
            assert!(max_relative_error(&fused, &layer.forward(&x).unwrap()) < 1e-5);
        }
    }

    #[test]
    fn a_layer_without_inputs_gives_its_bias() {
        let dev = Device::Cpu;
        let bias = Tensor::new(&[1f32, -2., 3.], &dev).unwrap();
        let layer = Linear::new(Tensor::zeros((3, 0), DType::F32, &dev).unwrap(), Some(bias));
        let x = Tensor::zeros((2, 0), DType::F32, &dev).unwrap();
        let y = linear_add(&x, &layer, None).unwrap();
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
        let reference = quick_gelu::quick_gelu(&layer.forward(&x).unwrap()).unwrap();
        let fused = linear_quick_gelu(&x, &layer).unwrap();
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
        let y = linear_add(&x.to_dtype(DType::BF16).unwrap(), &half, None).unwrap();
        assert_eq!(y.dtype(), DType::BF16);
        let err = linear_add(
            &Tensor::zeros((2, 5), DType::F32, &dev).unwrap(),
            &layer32,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("does not end in the weight's 4 inputs"),
            "{err}"
        );
        let wrong_residual = Tensor::zeros((3, 8), DType::F32, &dev).unwrap();
        let err = linear_add(&x, &layer32, Some(&wrong_residual))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("residual of 24 elements for a 2x8 output"),
            "{err}"
        );
    }
}
