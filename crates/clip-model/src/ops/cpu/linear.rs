//! Products on the CPU in f32 as one `gemm` call each (a call per core's
//! block, [`super::gemm::matmul`]): the destination starts as the bias
//! (plus the residual, where the layer's output is added to one) and `gemm`
//! accumulates `x Wᵀ` into it; QuickGELU or ReLU follow in place.
//!
//! candle's `Linear` is a matrix product followed by a broadcast bias
//! addition, and the encoder then adds the residual: two more passes over
//! the output, each on one core. Here they cost one parallel fill of the
//! destination.

use candle_core::{Device, Result, Tensor, bail};
use rayon::prelude::*;

use super::gemm::{self, View};
use super::quick_gelu::quick_gelu_in_place;
use super::storage::storage_f32;
use crate::ops::epilogue::EpilogueActivation;
use crate::ops::shapes::product_dims;

/// Elements per parallel task of the in-place ReLU.
const RELU_CHUNK: usize = 1 << 15;

/// `activation(x Wᵀ + bias + residual)`: one product (a `gemm` call per
/// core's block, [`gemm::matmul`]) into a destination that starts as
/// bias + residual, the activation in place after. `x` (..., k)
/// and `weight` (n, k) f32 on the CPU, `bias` (n), `residual` (..., n).
pub fn product(
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
    let xs = storage_f32(&x_storage, x_layout, "linear input")?;
    let ws = storage_f32(&w_storage, w_layout, "linear weight")?;
    let bias_guard = bias.as_ref().map(|b| b.storage_and_layout());
    let bs = match &bias_guard {
        Some((s, l)) => Some(storage_f32(s, l, "linear bias")?),
        None => None,
    };
    let residual_guard = residual.as_ref().map(|r| r.storage_and_layout());
    let rs = match &residual_guard {
        Some((s, l)) => Some(storage_f32(s, l, "residual")?),
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
pub struct Epilogue<'a> {
    pub bias: Option<&'a [f32]>,
    pub residual: Option<&'a [f32]>,
    pub activation: EpilogueActivation,
}

/// [`product`] on slices: `out` (rows x n) = `activation(xs Wᵀ + bias +
/// residual)` for `xs` (rows x k) and `ws` (n x k), row-major, `threads`
/// as in [`gemm::matmul`].
pub fn product_into(
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
    gemm::matmul(
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
        EpilogueActivation::QuickGelu => quick_gelu_in_place(out),
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
