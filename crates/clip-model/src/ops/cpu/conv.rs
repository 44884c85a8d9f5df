//! Channels-last convolutions and pooling on the CPU in f32: the patch
//! matrix (im2col) in parallel over pixels, products through
//! [`super::linear::product_into`] with bias, residual and ReLU in the same
//! pass, and for large maps the two together a cache-sized tile at a time.

use candle_core::{Result, bail};
use rayon::prelude::*;

use super::linear::{Epilogue, product_into};
use crate::ops::epilogue::EpilogueActivation;
use crate::ops::shapes::{MapShape, PatchGeometry};

/// Row `pixel` of the patch matrix of `x` (a map of shape `s`): its k·k
/// taps of c channels, zero where a tap falls outside the map.
pub fn fill_patch_row(g: PatchGeometry, x: &[f32], s: &MapShape, pixel: usize, row: &mut [f32]) {
    let (k, c) = (g.kernel, s.channels);
    let image = pixel / (s.out_height * s.out_width);
    let (oy, ox) = (pixel / s.out_width % s.out_height, pixel % s.out_width);
    for ky in 0..k {
        let iy = (oy * g.stride + ky).checked_sub(g.padding);
        for kx in 0..k {
            let ix = (ox * g.stride + kx).checked_sub(g.padding);
            let tap = &mut row[(ky * k + kx) * c..][..c];
            match (iy, ix) {
                (Some(iy), Some(ix)) if iy < s.height && ix < s.width => {
                    let at = ((image * s.height + iy) * s.width + ix) * c;
                    tap.copy_from_slice(&x[at..at + c]);
                }
                _ => tap.fill(0.0),
            }
        }
    }
}

/// The whole patch matrix of `x`, one output pixel (a row of k·k·c
/// values) per task.
pub fn patch_matrix(g: PatchGeometry, x: &[f32], s: &MapShape) -> Vec<f32> {
    let columns = g.kernel * g.kernel * s.channels;
    let mut out = vec![0f32; g.patch_matrix(s).elem_count()];
    out.par_chunks_mut(columns.max(1))
        .enumerate()
        .for_each(|(pixel, row)| fill_patch_row(g, x, s, pixel, row));
    out
}

/// The mean of each `size` x `size` window of `x` (a map of shape `s`
/// whose output sizes are the windows per side).
pub fn avg_pool(x: &[f32], s: &MapShape, size: usize) -> Vec<f32> {
    let mut out = vec![0f32; s.batch * s.out_height * s.out_width * s.channels];
    // One pass on this thread: over both cores it measured slower.
    for (pixel, dst) in out.chunks_mut(s.channels.max(1)).enumerate() {
        let (image, oy, ox) = (
            pixel / (s.out_height * s.out_width),
            pixel / s.out_width % s.out_height,
            pixel % s.out_width,
        );
        for dy in 0..size {
            for dx in 0..size {
                let at =
                    ((image * s.height + oy * size + dy) * s.width + ox * size + dx) * s.channels;
                for (d, v) in dst.iter_mut().zip(&x[at..at + s.channels]) {
                    *d += v;
                }
            }
        }
        dst.iter_mut().for_each(|d| *d /= (size * size) as f32);
    }
    out
}

/// The weights and what follows the product of one folded convolution.
#[derive(Clone, Copy)]
pub struct ConvWeights<'a> {
    /// (c_out, k·k·c_in), row-major.
    pub weight: &'a [f32],
    pub c_out: usize,
    pub bias: &'a [f32],
    /// (rows, c_out), the output's shape.
    pub residual: Option<&'a [f32]>,
    pub activation: EpilogueActivation,
}

/// The convolution `tile_rows` output pixels at a time: each task builds
/// its tile's rows of the patch matrix and multiplies them while they are
/// still in cache, where the whole matrix (hundreds of megabytes in RN50's
/// stem at batch 32) would go out to memory and back. Returns (rows, c_out).
pub fn conv_tiled(
    g: PatchGeometry,
    x: &[f32],
    s: &MapShape,
    w: ConvWeights<'_>,
    tile_rows: usize,
) -> Result<Vec<f32>> {
    let c_out = w.c_out;
    let columns = g.kernel * g.kernel * s.channels;
    let rows = s.batch * s.out_height * s.out_width;
    if tile_rows == 0 || c_out == 0 {
        bail!("convolution: {tile_rows}-row tiles of {c_out} outputs")
    }
    if w.weight.len() != c_out * columns {
        bail!(
            "convolution: a {0}x{0} kernel over {1} channels has {columns} weights per output, \
             not {2}",
            g.kernel,
            s.channels,
            w.weight.len() / c_out
        )
    }
    if w.residual.is_some_and(|r| r.len() != rows * c_out) {
        bail!("convolution: a residual of the wrong size for {rows}x{c_out} outputs")
    }
    let mut out = vec![0f32; rows * c_out];
    out.par_chunks_mut(tile_rows * c_out)
        .enumerate()
        .try_for_each_init(Vec::new, |patches, (tile, out_tile)| {
            let (first, tile_len) = (tile * tile_rows, out_tile.len() / c_out);
            patches.resize(tile_len * columns, 0.0);
            for (i, row) in patches.chunks_mut(columns).enumerate() {
                fill_patch_row(g, x, s, first + i, row);
            }
            let epilogue = Epilogue {
                bias: Some(w.bias),
                residual: w
                    .residual
                    .map(|r| &r[first * c_out..(first + tile_len) * c_out]),
                activation: w.activation,
            };
            let dims = (tile_len, c_out, columns);
            product_into(out_tile, dims, patches, w.weight, epilogue, 1)
        })?;
    Ok(out)
}
