//! Bytes to pixels in the mode PIL would open them in: libjpeg-turbo for
//! JPEG (`jpeg.rs`), image-rs for the rest, and the header checked against
//! the pixel limit before anything is allocated.

use std::io::Cursor;

use image::{DynamicImage, ImageReader};

use super::error::ImageError;
use super::jpeg::{JpegMode, decode_jpeg, is_jpeg};
use super::pixels::{Gray16, Interleaved};

/// Decoded samples, at the depth PIL would resize them in.
pub(super) enum Samples {
    Eight(Interleaved),
    /// 16-bit grayscale, Pillow's "I;16".
    Gray16(Gray16),
}

/// A decoded image in the channel layout PIL would resize it in.
pub(super) struct ModeImage {
    pub samples: Samples,
    /// The last channel is alpha (LA or RGBA).
    pub has_alpha: bool,
    /// PIL would open it in palette mode ("P").
    pub palette: bool,
    /// Four channels of CMYK ink, converted to RGB after the crop.
    pub cmyk: bool,
}

impl ModeImage {
    pub fn dimensions(&self) -> (usize, usize) {
        match &self.samples {
            Samples::Eight(p) => (p.width, p.height),
            Samples::Gray16(g) => (g.width, g.height),
        }
    }
}

/// Whether PIL opens these bytes as a palette ("P") image: indexed PNG,
/// BMP of 8 bits or fewer, and GIF unless its palette is the identity gray
/// ramp (which Pillow opens as "L").
fn opens_as_palette(bytes: &[u8]) -> bool {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        // IHDR colour type 3 = indexed.
        return bytes.get(25) == Some(&3);
    }
    if bytes.starts_with(b"GIF8") {
        let Some(&flags) = bytes.get(10) else {
            return false;
        };
        if flags & 0x80 == 0 {
            return true;
        }
        let entries = 1usize << ((flags & 7) + 1);
        let Some(table) = bytes.get(13..13 + 3 * entries) else {
            return true;
        };
        return !is_identity_gray_ramp(table, 3);
    }
    if bytes.starts_with(b"BM") {
        return bmp_opens_as_palette(bytes).unwrap_or(false);
    }
    false
}

/// Palette entry `i` is gray level `i` for every entry (`stride` bytes
/// each, colour first): Pillow then opens the image as "L".
fn is_identity_gray_ramp(table: &[u8], stride: usize) -> bool {
    table
        .chunks_exact(stride)
        .enumerate()
        .all(|(i, entry)| entry[..3].iter().all(|&v| usize::from(v) == i))
}

/// Pillow's BMP modes: more than 8 bits is RGB(A); 1-bit (or two-colour)
/// is "1" or "P", both resized with NEAREST; otherwise "L" when the palette
/// is the identity gray ramp, else "P".
fn bmp_opens_as_palette(bytes: &[u8]) -> Option<bool> {
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let header = u32_at(14)? as usize;
    // The OS/2 header (12 bytes) keeps the depth at 24 and 3-byte entries.
    let (bits, entry) = if header == 12 {
        (u16_at(24)?, 3)
    } else {
        (u16_at(28)?, 4)
    };
    if bits > 8 {
        return Some(false);
    }
    let used = if header >= 40 {
        u32_at(46)? as usize
    } else {
        0
    };
    let colors = if used == 0 { 1usize << bits } else { used };
    if bits == 1 || colors == 2 {
        return Some(true);
    }
    let start = 14 + header;
    let table = bytes.get(start..start + colors * entry)?;
    Some(!is_identity_gray_ramp(table, entry))
}

/// Decode `bytes`, refusing images of more than `max_pixels` pixels.
pub(super) fn decode(bytes: &[u8], max_pixels: usize) -> Result<ModeImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if is_jpeg(bytes) {
        let (pixels, mode) = decode_jpeg(bytes, max_pixels)?;
        return Ok(ModeImage {
            samples: Samples::Eight(pixels),
            has_alpha: false,
            palette: false,
            cmyk: mode == JpegMode::Cmyk,
        });
    }
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| ImageError::Unreadable {
                reason: e.to_string(),
            })
    };
    let Some(format) = reader()?.format() else {
        return Err(ImageError::NotAnImage {
            first_bytes: bytes[..bytes.len().min(8)].to_vec(),
        });
    };
    // The header alone says how big the image is: refuse a decompression
    // bomb before its pixels are allocated.
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|e| ImageError::BadHeader {
            format: format!("{format:?}"),
            reason: e.to_string(),
        })?;
    let pixels = width as usize * height as usize;
    if pixels > max_pixels {
        return Err(ImageError::TooManyPixels {
            what: format!("{format:?} image"),
            width: width as usize,
            height: height as usize,
            max_pixels,
        });
    }
    let mut reader = reader()?;
    let mut limits = image::Limits::default();
    // Room for the widest layout image-rs decodes into (RGBA, 32-bit float)
    // plus a decoder's scratch copy; the pixel check above is the real limit.
    limits.max_alloc = Some((pixels as u64).saturating_mul(32).max(1 << 26));
    reader.limits(limits);
    let image = reader.decode().map_err(|e| ImageError::Corrupt {
        what: format!("{format:?} image"),
        reason: e.to_string(),
    })?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    if width == 0 || height == 0 {
        return Err(ImageError::NoPixels { width, height });
    }
    let (channels, has_alpha, data) = match image {
        DynamicImage::ImageLuma8(img) => (1, false, img.into_raw()),
        DynamicImage::ImageLumaA8(img) => (2, true, img.into_raw()),
        DynamicImage::ImageRgb8(img) => (3, false, img.into_raw()),
        DynamicImage::ImageRgba8(img) => (4, true, img.into_raw()),
        // PIL opens 16-bit grayscale as mode "I;16" and resizes it in 16 bits.
        DynamicImage::ImageLuma16(img) => {
            return Ok(ModeImage {
                samples: Samples::Gray16(Gray16 {
                    width,
                    height,
                    data: img.into_raw(),
                }),
                has_alpha: false,
                palette: false,
                cmyk: false,
            });
        }
        // 16-bit colour and gray+alpha: PIL's PNG reader keeps the high byte.
        DynamicImage::ImageLumaA16(img) => (2, true, high_bytes(img.into_raw())),
        DynamicImage::ImageRgb16(img) => (3, false, high_bytes(img.into_raw())),
        DynamicImage::ImageRgba16(img) => (4, true, high_bytes(img.into_raw())),
        other if other.color().has_alpha() => (4, true, other.to_rgba8().into_raw()),
        other => (3, false, other.to_rgb8().into_raw()),
    };
    Ok(ModeImage {
        samples: Samples::Eight(Interleaved {
            width,
            height,
            channels,
            data,
        }),
        has_alpha,
        palette: opens_as_palette(bytes),
        cmyk: false,
    })
}

fn high_bytes(samples: Vec<u16>) -> Vec<u8> {
    samples.into_iter().map(|v| (v >> 8) as u8).collect()
}
