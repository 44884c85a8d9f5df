//! The sizes an op's implementations agree on, defined once for the entry
//! and every backend: a product's output dims, an attention launch, a
//! channels-last feature map.

use candle_core::{Result, Shape, Tensor, bail};

/// The dims of `x Wᵀ` for `x` (..., k) and `weight` (n, k): `x`'s with the
/// last one n.
pub fn product_dims(x: &Tensor, weight: &Tensor) -> Result<Vec<usize>> {
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

/// The sizes of one packed attention: `images` x `tokens` rows of q, k and
/// v side by side, each `heads` x `head_dim` wide.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub images: usize,
    pub tokens: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    pub fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// (images, tokens, width): the heads merged.
    pub fn output(&self) -> Shape {
        Shape::from((self.images, self.tokens, self.width()))
    }
}

/// The sizes of one channels-last op: input (batch, h, w, c), output
/// (batch, oh, ow, ·).
#[derive(Debug, Clone, Copy)]
pub struct MapShape {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub out_height: usize,
    pub out_width: usize,
}

/// Where a k x k convolution reads: kernel size, stride and zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchGeometry {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl PatchGeometry {
    /// Whether the convolution reads the map as it is (a 1x1, stride 1).
    pub fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    /// Output length along one axis of `input`, if the kernel fits.
    pub fn out_size(&self, input: usize) -> Option<usize> {
        (input + 2 * self.padding)
            .checked_sub(self.kernel)
            .map(|span| span / self.stride.max(1) + 1)
    }

    /// The sizes of convolving a (batch, h, w, c) map.
    pub fn map_shape(&self, dims: &[usize]) -> Result<MapShape> {
        let &[batch, height, width, channels] = dims else {
            bail!("a convolution's map must be (batch, h, w, c), not {dims:?}")
        };
        match (self.out_size(height), self.out_size(width)) {
            (Some(out_height), Some(out_width)) if self.stride > 0 => Ok(MapShape {
                batch,
                height,
                width,
                channels,
                out_height,
                out_width,
            }),
            _ => bail!(
                "a {height}x{width} map is smaller than its {0}x{0} kernel",
                self.kernel
            ),
        }
    }

    /// (batch·oh·ow, k·k·c): the patch matrix of a map of shape `s`.
    pub fn patch_matrix(&self, s: &MapShape) -> Shape {
        Shape::from((
            s.batch * s.out_height * s.out_width,
            self.kernel * self.kernel * s.channels,
        ))
    }
}
