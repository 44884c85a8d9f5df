//! PIL's bicubic resampling (`Image.resize(size, Image.BICUBIC)`), bit for bit.
//!
//! CLIP's preprocessing is torchvision's `Resize` on a PIL image, which is
//! Pillow's `ImagingResample`: a separable convolution with the Keys cubic
//! (`a = -0.5`) whose support widens by the downscale factor (so downscaling
//! is antialiased), coefficients normalised per output pixel and converted to
//! 22-bit fixed point, a horizontal pass over only the rows the vertical pass
//! needs, rounding to 8 bits in between. image-rs's `CatmullRom` filter
//! differs in support, normalisation and rounding; these few loops are what
//! it takes to produce the reference's pixels.

use super::pixels::{Gray16, Interleaved};

/// Fixed-point precision of Pillow's 8-bit resampler (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;
/// Support radius of the bicubic filter at scale 1.
const BICUBIC_SUPPORT: f64 = 2.0;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output pixel: first input index, and the weights of the
/// consecutive input pixels it reads (`f64` for Pillow's 16-bit resampler,
/// 22-bit fixed point for its 8-bit one).
struct Coefficients<W> {
    starts: Vec<usize>,
    counts: Vec<usize>,
    /// `out_size * window` weights; unused tail entries are zero.
    weights: Vec<W>,
    window: usize,
}

/// Pillow's `precompute_coeffs`: normalised bicubic weights.
fn float_coefficients(in_size: usize, out_size: usize) -> Coefficients<f64> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    // Pillow multiplies by the reciprocal; dividing can differ in the last bit.
    let inverse_scale = 1.0 / filter_scale;
    let support = BICUBIC_SUPPORT * filter_scale;
    let window = support.ceil() as usize * 2 + 1;
    let mut starts = Vec::with_capacity(out_size);
    let mut counts = Vec::with_capacity(out_size);
    let mut weights = vec![0f64; out_size * window];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's `(int)` truncates toward zero; both bounds are then clamped.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let count = xmax.saturating_sub(xmin).min(window);
        let row = &mut weights[xx * window..(xx + 1) * window];
        let mut total = 0.0;
        for (x, w) in row.iter_mut().enumerate().take(count) {
            *w = bicubic(((x + xmin) as f64 - center + 0.5) * inverse_scale);
            total += *w;
        }
        if total != 0.0 {
            row.iter_mut().take(count).for_each(|w| *w /= total);
        }
        starts.push(xmin);
        counts.push(count);
    }
    Coefficients {
        starts,
        counts,
        weights,
        window,
    }
}

impl<W> Coefficients<W> {
    /// The source rows `first..last` the vertical pass reads (all of an
    /// `in_size`-row image when there is no vertical pass): the horizontal
    /// pass computes only these, as Pillow does.
    fn rows_read(&self, in_size: usize, need_vertical: bool) -> (usize, usize) {
        match (need_vertical, self.starts.len().checked_sub(1)) {
            (true, Some(last)) => (self.starts[0], self.starts[last] + self.counts[last]),
            _ => (0, in_size),
        }
    }
}

/// Pillow's `normalize_coeffs_8bpc`: the weights in fixed point.
fn coefficients(in_size: usize, out_size: usize) -> Coefficients<i32> {
    let float = float_coefficients(in_size, out_size);
    let one = f64::from(1u32 << PRECISION_BITS);
    let weights = float
        .weights
        .iter()
        .map(|&w| {
            if w < 0.0 {
                (-0.5 + w * one) as i32
            } else {
                (0.5 + w * one) as i32
            }
        })
        .collect();
    Coefficients {
        starts: float.starts,
        counts: float.counts,
        weights,
        window: float.window,
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    if acc >= (1 << PRECISION_BITS << 8) {
        255
    } else if acc <= 0 {
        0
    } else {
        (acc >> PRECISION_BITS) as u8
    }
}

/// Resize `image` to `width x height` exactly as Pillow's bicubic resample.
pub fn resize_bicubic(image: &Interleaved, width: usize, height: usize) -> Interleaved {
    resize_bicubic_crop(
        image,
        width,
        height,
        Crop {
            left: 0,
            top: 0,
            width,
            height,
        },
    )
}

/// A rectangle of a resized image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub left: usize,
    pub top: usize,
    pub width: usize,
    pub height: usize,
}

/// The `crop` of `image` resized to `width x height`: the same bytes as
/// [`resize_bicubic`] followed by cropping, but only the cropped pixels are
/// computed (every output pixel depends on the input alone). CLIP's centre
/// crop of a 4:3 photo drops a quarter of the resized image, so this saves
/// a quarter of the work. `crop` must lie inside `width x height`.
pub fn resize_bicubic_crop(
    image: &Interleaved,
    width: usize,
    height: usize,
    crop: Crop,
) -> Interleaved {
    // The default x86-64 target has SSE2 only, which has no 32-bit integer
    // multiply across lanes: the same loops compiled for AVX2 run about twice
    // as fast. The bytes are the same either way (integer arithmetic).
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { resize_bicubic_crop_avx2(image, width, height, crop) };
    }
    resize_bicubic_crop_portable(image, width, height, crop)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn resize_bicubic_crop_avx2(
    image: &Interleaved,
    width: usize,
    height: usize,
    crop: Crop,
) -> Interleaved {
    resize_bicubic_crop_portable(image, width, height, crop)
}

#[inline(always)]
fn resize_bicubic_crop_portable(
    image: &Interleaved,
    width: usize,
    height: usize,
    crop: Crop,
) -> Interleaved {
    let channels = image.channels;
    let need_horizontal = width != image.width;
    let need_vertical = height != image.height;
    let wanted_rows = crop.top..crop.top + crop.height;

    // Source rows the output rows of the crop read: Pillow's horizontal
    // pass also computes only the rows its vertical pass needs.
    let vertical = coefficients(image.height, height);
    let (first_row, last_row) = if need_vertical {
        let first = wanted_rows
            .clone()
            .map(|yy| vertical.starts[yy])
            .min()
            .unwrap_or(0);
        let last = wanted_rows
            .clone()
            .map(|yy| vertical.starts[yy] + vertical.counts[yy])
            .max()
            .unwrap_or(0);
        (first, last)
    } else {
        (crop.top, crop.top + crop.height)
    };
    let rows = last_row - first_row;

    // Horizontal pass (or the crop's columns copied): `rows` x crop.width.
    let row_len = crop.width * channels;
    let mut band = vec![0u8; rows * row_len];
    if need_horizontal {
        let horizontal = coefficients(image.width, width);
        let columns = crop.left..crop.left + crop.width;
        for y in 0..rows {
            let src =
                &image.data[(y + first_row) * image.width * channels..][..image.width * channels];
            let dst = &mut band[y * row_len..][..row_len];
            match channels {
                1 => horizontal_row::<1>(src, dst, &horizontal, columns.clone()),
                2 => horizontal_row::<2>(src, dst, &horizontal, columns.clone()),
                3 => horizontal_row::<3>(src, dst, &horizontal, columns.clone()),
                4 => horizontal_row::<4>(src, dst, &horizontal, columns.clone()),
                _ => horizontal_row_any(src, dst, &horizontal, columns.clone(), channels),
            }
        }
    } else {
        for y in 0..rows {
            let src = &image.data[((y + first_row) * image.width + crop.left) * channels..];
            band[y * row_len..][..row_len].copy_from_slice(&src[..row_len]);
        }
    }
    if !need_vertical {
        return Interleaved {
            width: crop.width,
            height: crop.height,
            channels,
            data: band,
        };
    }

    // Vertical pass, a whole output row at a time: each tap adds a scaled
    // source row to the accumulators (a loop the compiler vectorises).
    let mut out = vec![0u8; crop.height * row_len];
    let mut acc = vec![0i32; row_len];
    let half = 1i32 << (PRECISION_BITS - 1);
    for (y, yy) in wanted_rows.enumerate() {
        let start = vertical.starts[yy] - first_row;
        let k = &vertical.weights[yy * vertical.window..][..vertical.counts[yy]];
        acc.fill(half);
        for (i, &w) in k.iter().enumerate() {
            let src = &band[(start + i) * row_len..][..row_len];
            for (a, &v) in acc.iter_mut().zip(src) {
                *a += i32::from(v) * w;
            }
        }
        for (d, &a) in out[y * row_len..][..row_len].iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    Interleaved {
        width: crop.width,
        height: crop.height,
        channels,
        data: out,
    }
}

/// One row of the horizontal pass for `C` interleaved channels: per output
/// pixel, the channels' sums run side by side over the taps (one read of
/// each source pixel; the loops unroll for a known `C`).
#[inline(always)]
fn horizontal_row<const C: usize>(
    src: &[u8],
    dst: &mut [u8],
    horizontal: &Coefficients<i32>,
    columns: std::ops::Range<usize>,
) {
    let half = 1i32 << (PRECISION_BITS - 1);
    for (out, xx) in dst.chunks_exact_mut(C).zip(columns) {
        let start = horizontal.starts[xx];
        let k = &horizontal.weights[xx * horizontal.window..][..horizontal.counts[xx]];
        let taps = &src[start * C..][..k.len() * C];
        let mut acc = [half; C];
        for (pixel, &w) in taps.chunks_exact(C).zip(k) {
            for c in 0..C {
                acc[c] += i32::from(pixel[c]) * w;
            }
        }
        for c in 0..C {
            out[c] = clip8(acc[c]);
        }
    }
}

/// [`horizontal_row`] for any number of channels.
#[inline(always)]
fn horizontal_row_any(
    src: &[u8],
    dst: &mut [u8],
    horizontal: &Coefficients<i32>,
    columns: std::ops::Range<usize>,
    channels: usize,
) {
    let half = 1i32 << (PRECISION_BITS - 1);
    for (out, xx) in dst.chunks_exact_mut(channels).zip(columns) {
        let start = horizontal.starts[xx];
        let k = &horizontal.weights[xx * horizontal.window..][..horizontal.counts[xx]];
        let taps = &src[start * channels..][..k.len() * channels];
        for (c, o) in out.iter_mut().enumerate() {
            let mut acc = half;
            for (i, &w) in k.iter().enumerate() {
                acc += i32::from(taps[i * channels + c]) * w;
            }
            *o = clip8(acc);
        }
    }
}

/// Pillow 13's 16-bit store: the rounded sum clamped to 0..=65535, as a
/// whole (clipping its two bytes apart, which turns 65540 into 65284, gave
/// 1/255 errors on 16-bit noise: the horizontal pass feeds the vertical
/// one, so a wrong overshoot reaches values near 255).
fn store16(v: i64) -> u16 {
    v.clamp(0, i64::from(u16::MAX)) as u16
}

/// C's `ROUND_UP`: half away from zero.
fn round_half_away(v: f64) -> i64 {
    if v >= 0.0 {
        (v + 0.5).floor() as i64
    } else {
        -((v.abs() + 0.5).floor() as i64)
    }
}

/// Resize a 16-bit grayscale image as Pillow's bicubic resample does for
/// "I;16" (`ImagingResampleHorizontal_16bpc` / `..Vertical_16bpc`): `f64`
/// weights, rounding after each pass.
pub fn resize_bicubic_gray16(image: &Gray16, width: usize, height: usize) -> Gray16 {
    let need_horizontal = width != image.width;
    let need_vertical = height != image.height;
    let vertical = float_coefficients(image.height, height);
    let (first_row, last_row) = vertical.rows_read(image.height, need_vertical);
    let mut current = std::borrow::Cow::Borrowed(image);
    if need_horizontal {
        let horizontal = float_coefficients(image.width, width);
        let rows = last_row - first_row;
        let mut out = vec![0u16; rows * width];
        for y in 0..rows {
            let src = &image.data[(y + first_row) * image.width..][..image.width];
            for (xx, d) in out[y * width..][..width].iter_mut().enumerate() {
                let start = horizontal.starts[xx];
                let k = &horizontal.weights[xx * horizontal.window..][..horizontal.counts[xx]];
                let ss: f64 = k
                    .iter()
                    .enumerate()
                    .map(|(i, w)| f64::from(src[start + i]) * w)
                    .sum();
                *d = store16(round_half_away(ss));
            }
        }
        current = std::borrow::Cow::Owned(Gray16 {
            width,
            height: rows,
            data: out,
        });
    }
    if need_vertical {
        let offset = if need_horizontal { first_row } else { 0 };
        let src = current.as_ref();
        let mut out = vec![0u16; height * src.width];
        for yy in 0..height {
            let start = vertical.starts[yy] - offset;
            let k = &vertical.weights[yy * vertical.window..][..vertical.counts[yy]];
            for (x, d) in out[yy * src.width..][..src.width].iter_mut().enumerate() {
                let ss: f64 = k
                    .iter()
                    .enumerate()
                    .map(|(i, w)| f64::from(src.data[(start + i) * src.width + x]) * w)
                    .sum();
                *d = store16(round_half_away(ss));
            }
        }
        return Gray16 {
            width: src.width,
            height,
            data: out,
        };
    }
    current.into_owned()
}

/// Resize `image` to `width x height` as Pillow's `resize(..., NEAREST)`,
/// which `Image.resize` uses for palette ("P") images whatever filter was
/// asked for. A pure scaling goes through `ImagingScaleAffine` (Pillow's
/// Geometry.c): the source position of each output column and row starts at
/// half a step and grows by adding the step, in `f64`, truncated to a pixel;
/// a position that falls outside the source is left black (`fill`). The
/// accumulated sum, not `(i + 0.5) * step`, is what decides a few columns.
pub fn resize_nearest(image: &Interleaved, width: usize, height: usize) -> Interleaved {
    let c = image.channels;
    let sources = |in_size: usize, out_size: usize| -> Vec<Option<usize>> {
        let step = in_size as f64 / out_size as f64;
        let mut position = step * 0.5;
        (0..out_size)
            .map(|_| {
                // C's `(int)` of a non-negative double: truncation.
                let source = (position >= 0.0).then_some(position as usize);
                position += step;
                source.filter(|&s| s < in_size)
            })
            .collect()
    };
    let xs = sources(image.width, width);
    let ys = sources(image.height, height);
    let mut data = vec![0u8; width * height * c];
    for (out_row, y) in data.chunks_exact_mut(width * c).zip(&ys) {
        let Some(y) = *y else { continue };
        let row = &image.data[y * image.width * c..(y + 1) * image.width * c];
        for (out, x) in out_row.chunks_exact_mut(c).zip(&xs) {
            if let Some(x) = *x {
                out.copy_from_slice(&row[x * c..(x + 1) * c]);
            }
        }
    }
    Interleaved {
        width,
        height,
        channels: c,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: usize, height: usize) -> Interleaved {
        let data = (0..width * height)
            .map(|i| ((i % width) * 255 / (width - 1).max(1)) as u8 ^ ((i / width) * 7) as u8)
            .collect();
        Interleaved {
            width,
            height,
            channels: 1,
            data,
        }
    }

    /// Cropping the resized image and resizing only the crop agree byte
    /// for byte, with both passes, either pass alone, and 1 or 3 channels.
    #[test]
    fn resizing_a_crop_equals_cropping_the_resize() {
        let gray = gradient(500, 375);
        let rgb = Interleaved {
            width: 97,
            height: 61,
            channels: 3,
            data: (0..97 * 61 * 3).map(|i| (i * 37 % 251) as u8).collect(),
        };
        for (img, w, h) in [
            (&gray, 298, 224),
            (&gray, 224, 300),
            (&gray, 500, 224),
            (&gray, 298, 375),
            (&rgb, 40, 25),
            (&rgb, 300, 200),
        ] {
            let full = resize_bicubic(img, w, h);
            for crop in [
                Crop {
                    left: 0,
                    top: 0,
                    width: w,
                    height: h,
                },
                Crop {
                    left: (w - w.min(h)) / 2,
                    top: (h - w.min(h)) / 2,
                    width: w.min(h),
                    height: w.min(h),
                },
                Crop {
                    left: w - 3,
                    top: h - 2,
                    width: 3,
                    height: 2,
                },
            ] {
                let part = resize_bicubic_crop(img, w, h, crop);
                let c = img.channels;
                for y in 0..crop.height {
                    let expected =
                        &full.data[((crop.top + y) * w + crop.left) * c..][..crop.width * c];
                    assert_eq!(
                        &part.data[y * crop.width * c..][..crop.width * c],
                        expected,
                        "{w}x{h} {crop:?} row {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn same_size_is_identity() {
        let img = gradient(9, 5);
        assert_eq!(resize_bicubic(&img, 9, 5), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = Interleaved {
            width: 37,
            height: 11,
            channels: 3,
            data: vec![200; 37 * 11 * 3],
        };
        for (w, h) in [(5, 3), (80, 40), (37, 2), (1, 1)] {
            let out = resize_bicubic(&img, w, h);
            assert!(out.data.iter().all(|&v| v == 200), "{w}x{h}");
        }
    }

    // Values printed by Pillow 13.0 for the same input:
    // Image.frombytes("L", (8, 1), bytes([0, 0, 0, 255, 255, 0, 0, 0])).resize((4, 1), Image.BICUBIC)
    // Image.frombytes("L", (4, 1), bytes([0, 100, 200, 255])).resize((7, 1), Image.BICUBIC)
    #[test]
    fn matches_pillow_on_small_rows() {
        let down = Interleaved {
            width: 8,
            height: 1,
            channels: 1,
            data: vec![0, 0, 0, 255, 255, 0, 0, 0],
        };
        assert_eq!(resize_bicubic(&down, 4, 1).data, PILLOW_DOWN.to_vec());
        let up = Interleaved {
            width: 4,
            height: 1,
            channels: 1,
            data: vec![0, 100, 200, 255],
        };
        assert_eq!(resize_bicubic(&up, 7, 1).data, PILLOW_UP.to_vec());
    }

    const PILLOW_DOWN: [u8; 4] = [0, 138, 138, 0];
    const PILLOW_UP: [u8; 7] = [0, 26, 92, 153, 206, 242, 255];
}
