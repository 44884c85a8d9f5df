//! Decoded pixels as the preprocessing steps pass them along: interleaved
//! 8-bit channels, or 16-bit grayscale, which Pillow resizes in 16 bits.

/// An 8-bit image with interleaved channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interleaved {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

/// A 16-bit grayscale image: what Pillow opens a 16-bit grayscale PNG as
/// (mode "I;16").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gray16 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u16>,
}
