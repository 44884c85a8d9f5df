//! CLIP image preprocessing: decode, resize the short side, centre crop,
//! normalise — the reference's `Compose([Resize(n, BICUBIC), CenterCrop(n),
//! convert("RGB"), ToTensor(), Normalize(mean, std)])` on a PIL image.
//!
//! Decoding is libjpeg-turbo's code for JPEG (`jpeg.rs`, the decoder
//! Pillow uses) and image-rs for PNG, WebP, GIF (first frame), BMP
//! and TIFF.
//! The steps follow what PIL does in each image mode, because that is what
//! the reference's pixels are: the resize runs in the decoded mode (one
//! channel for grayscale), images with alpha are resized premultiplied and
//! their alpha then dropped (no compositing), palette images are resized
//! with nearest neighbour (PIL ignores the filter for them), 16-bit samples
//! are reduced the way PIL's PNG reader and `convert("RGB")` reduce them.

mod decode;
mod error;
mod jpeg;
mod pixels;
mod resize;

use rayon::prelude::*;

use decode::{ModeImage, Samples, decode};
pub use error::ImageError;
use jpeg::cmyk_to_rgb;
use pixels::Interleaved;
use resize::{Crop, resize_bicubic, resize_bicubic_crop, resize_bicubic_gray16, resize_nearest};

// The reference's literals, digit for digit: rounded to f32 they are the
// same numbers as torch's float32 tensors of them.
/// CLIP's normalisation mean (RGB).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's normalisation standard deviation (RGB).
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// The default for the most pixels an image may have, decoded or resized
/// (`clip.max_image_pixels`): Pillow's decompression-bomb limit
/// (`2 * Image.MAX_IMAGE_PIXELS`), above which the reference refuses an
/// image too. About 180 megapixels: 540 MB as RGB, far beyond any
/// benchmark photo and small enough that a batch of them cannot exhaust
/// memory.
pub const MAX_IMAGE_PIXELS: usize = 2 * 89_478_485;

/// File extensions the decoders read, lower case: what the image table
/// formats take for images.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// Turns encoded images into `3 x size x size` normalised f32 tensors (CHW).
#[derive(Debug, Clone, Copy)]
pub struct Preprocessor {
    pub size: usize,
    /// Images with more pixels than this, decoded or after the resize, are
    /// refused before their pixel buffer is allocated.
    pub max_pixels: usize,
}

impl Preprocessor {
    pub fn new(size: usize) -> Self {
        Self {
            size,
            max_pixels: MAX_IMAGE_PIXELS,
        }
    }

    /// The same preprocessing with another pixel limit (`clip.max_image_pixels`).
    pub fn with_max_pixels(self, max_pixels: usize) -> Self {
        Self { max_pixels, ..self }
    }

    /// Number of f32 values one preprocessed image occupies.
    pub fn pixels_per_image(&self) -> usize {
        3 * self.size * self.size
    }

    /// Decode and preprocess one encoded image.
    pub fn preprocess(&self, bytes: &[u8]) -> Result<Vec<f32>, ImageError> {
        let mut out = vec![0f32; self.pixels_per_image()];
        self.preprocess_into(bytes, &mut out)?;
        Ok(out)
    }

    /// Decode and preprocess one encoded image into `out` (CHW, length
    /// [`Self::pixels_per_image`]).
    pub fn preprocess_into(&self, bytes: &[u8], out: &mut [f32]) -> Result<(), ImageError> {
        let decoded = decode(bytes, self.max_pixels)?;
        let cropped = self.resize_and_crop(&decoded)?;
        normalise_into(&cropped, out);
        Ok(())
    }

    /// Whether [`Self::preprocess`] would accept these bytes, without the
    /// resize: the decode and the pixel limits. Gives the same error.
    pub fn check(&self, bytes: &[u8]) -> Result<(), ImageError> {
        let decoded = decode(bytes, self.max_pixels)?;
        let (w, h) = decoded.dimensions();
        self.check_resize(w, h).map(|_| ())
    }

    /// The resized size of a `w x h` image, or why it is refused.
    fn check_resize(&self, w: usize, h: usize) -> Result<(usize, usize), ImageError> {
        let (new_w, new_h) = resized_dims(w, h, self.size);
        // A sliver (1 x 100000) resizes to size x (size * 100000): refuse
        // what would not fit in memory rather than abort the process.
        if new_w.saturating_mul(new_h) > self.max_pixels {
            return Err(ImageError::ResizeTooLarge {
                width: w,
                height: h,
                size: self.size,
                resized_width: new_w,
                resized_height: new_h,
                max_pixels: self.max_pixels,
            });
        }
        Ok((new_w, new_h))
    }

    /// The 8-bit RGB centre crop (height x width x 3) before normalisation:
    /// what PIL holds after `Resize`, `CenterCrop` and `convert("RGB")`.
    pub fn resized_rgb(&self, bytes: &[u8]) -> Result<Vec<u8>, ImageError> {
        let decoded = decode(bytes, self.max_pixels)?;
        let cropped = self.resize_and_crop(&decoded)?;
        let c = cropped.channels;
        Ok(cropped
            .data
            .chunks_exact(c)
            .flat_map(|px| {
                if c >= 3 {
                    [px[0], px[1], px[2]]
                } else {
                    [px[0]; 3]
                }
            })
            .collect())
    }

    /// Decode and crop a batch in parallel (rayon) to the 8-bit RGB crops
    /// the engine sends to the device (normalised there). `None` entries
    /// (SQL NULLs) and undecodable images give `Err`; input order is kept.
    pub fn resized_rgb_batch(&self, images: &[Option<&[u8]>]) -> Vec<Result<Vec<u8>, ImageError>> {
        images
            .par_iter()
            .map(|image| match image {
                Some(bytes) => self.resized_rgb(bytes),
                None => Err(ImageError::Null),
            })
            .collect()
    }

    /// Resize so the short side is `size` (torchvision's rule for the long
    /// side: `int(size * long / short)`), then take the centre square.
    fn resize_and_crop(&self, image: &ModeImage) -> Result<Interleaved, ImageError> {
        let (w, h) = image.dimensions();
        let (new_w, new_h) = self.check_resize(w, h)?;
        let pixels = match &image.samples {
            Samples::Eight(pixels) => pixels,
            Samples::Gray16(gray) => {
                // Pillow resizes "I;16" in 16 bits; `convert("RGB")` then
                // clips each value to 255.
                let resized = resize_bicubic_gray16(gray, new_w, new_h);
                let clipped = Interleaved {
                    width: resized.width,
                    height: resized.height,
                    channels: 1,
                    data: resized.data.iter().map(|&v| v.min(255) as u8).collect(),
                };
                return Ok(center_crop(&clipped, self.size));
            }
        };
        // The centre square of the resized image: only it is computed when
        // it fits (it always does: the short side is resized to `size`).
        let crop = (new_w >= self.size && new_h >= self.size).then(|| Crop {
            left: round_half_even_half(new_w - self.size),
            top: round_half_even_half(new_h - self.size),
            width: self.size,
            height: self.size,
        });
        let cropped = match crop {
            _ if (new_w, new_h) == (w, h) => center_crop(pixels, self.size),
            // PIL resizes palette images with NEAREST whatever filter is asked.
            _ if image.palette => center_crop(&resize_nearest(pixels, new_w, new_h), self.size),
            Some(crop) if image.has_alpha => {
                // PIL resizes RGBA/LA premultiplied ("RGBa"/"La") and
                // converts back, pixel by pixel (so after the crop too).
                let mut premultiplied = pixels.clone();
                premultiply(&mut premultiplied);
                let mut out = resize_bicubic_crop(&premultiplied, new_w, new_h, crop);
                unpremultiply(&mut out);
                out
            }
            // Includes CMYK, which PIL resizes as four plain channels.
            Some(crop) => resize_bicubic_crop(pixels, new_w, new_h, crop),
            None if image.has_alpha => {
                let mut premultiplied = pixels.clone();
                premultiply(&mut premultiplied);
                let mut out = resize_bicubic(&premultiplied, new_w, new_h);
                unpremultiply(&mut out);
                center_crop(&out, self.size)
            }
            None => center_crop(&resize_bicubic(pixels, new_w, new_h), self.size),
        };
        Ok(if image.cmyk {
            cmyk_to_rgb(&cropped)
        } else {
            cropped
        })
    }
}

/// Output size of torchvision's `Resize(size)` for a `w x h` image.
pub fn resized_dims(w: usize, h: usize, size: usize) -> (usize, usize) {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    if short == 0 {
        return (w, h);
    }
    // Python: int(size * long / short) — exact product, float division, truncation.
    let new_long = ((size * long) as f64 / short as f64) as usize;
    if w <= h {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// Pillow's RGBA -> RGBa (and LA -> La): colour times alpha / 255, rounded.
fn premultiply(image: &mut Interleaved) {
    let c = image.channels;
    for px in image.data.chunks_exact_mut(c) {
        let alpha = u32::from(px[c - 1]);
        for v in &mut px[..c - 1] {
            let t = u32::from(*v) * alpha + 128;
            *v = (((t >> 8) + t) >> 8) as u8;
        }
    }
}

/// Pillow's RGBa -> RGBA: colour * 255 / alpha, except at alpha 0 and 255.
fn unpremultiply(image: &mut Interleaved) {
    let c = image.channels;
    for px in image.data.chunks_exact_mut(c) {
        let alpha = u32::from(px[c - 1]);
        if alpha == 0 || alpha == 255 {
            continue;
        }
        for v in &mut px[..c - 1] {
            *v = (255 * u32::from(*v) / alpha).min(255) as u8;
        }
    }
}

/// torchvision's `CenterCrop(size)` after a short-side resize: offsets are
/// `round((dim - size) / 2)` with Python's round-half-to-even.
fn center_crop(image: &Interleaved, size: usize) -> Interleaved {
    let top = round_half_even_half(image.height.saturating_sub(size));
    let left = round_half_even_half(image.width.saturating_sub(size));
    let c = image.channels;
    let mut data = vec![0u8; size * size * c];
    let copy_w = size.min(image.width);
    for y in 0..size.min(image.height) {
        let src = &image.data[((y + top) * image.width + left) * c..][..copy_w * c];
        data[y * size * c..][..copy_w * c].copy_from_slice(src);
    }
    Interleaved {
        width: size,
        height: size,
        channels: c,
        data,
    }
}

/// `round(n / 2)` with ties to even, for a non-negative integer `n`.
fn round_half_even_half(n: usize) -> usize {
    let half = n / 2;
    if n % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// `ToTensor()` then `Normalize(mean, std)`, in f32 as torchvision does,
/// writing planar RGB. One- and two-channel images repeat their gray value.
fn normalise_into(image: &Interleaved, out: &mut [f32]) {
    let c = image.channels;
    let plane = image.width * image.height;
    for (i, px) in image.data.chunks_exact(c).enumerate() {
        for ch in 0..3 {
            let v = if c >= 3 { px[ch] } else { px[0] };
            out[ch * plane + i] = (f32::from(v) / 255.0 - CLIP_MEAN[ch]) / CLIP_STD[ch];
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn short_side_rule_matches_torchvision() {
        assert_eq!(resized_dims(500, 375, 224), (298, 224));
        assert_eq!(resized_dims(375, 500, 224), (224, 298));
        assert_eq!(resized_dims(1, 5000, 224), (224, 1_120_000));
        assert_eq!(resized_dims(224, 224, 224), (224, 224));
    }

    #[test]
    fn crop_offsets_round_half_to_even() {
        // round(0.5) = 0, round(1.5) = 2, round(2.5) = 2 in Python.
        assert_eq!(round_half_even_half(1), 0);
        assert_eq!(round_half_even_half(3), 2);
        assert_eq!(round_half_even_half(5), 2);
        assert_eq!(round_half_even_half(4), 2);
    }

    #[test]
    fn rejects_bytes_that_are_not_an_image() {
        let p = Preprocessor::new(8);
        assert_eq!(p.preprocess(b"").unwrap_err(), ImageError::Empty);
        assert!(
            p.preprocess(b"hello world, not an image")
                .unwrap_err()
                .to_string()
                .contains("not a supported image")
        );
    }

    #[test]
    fn slivers_that_would_resize_past_the_pixel_limit_are_errors() {
        let sliver = image::RgbImage::from_pixel(1, 5000, image::Rgb([9, 9, 9]));
        let mut png = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(sliver)
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        let err = Preprocessor::new(224)
            .preprocess(png.get_ref())
            .unwrap_err();
        assert!(err.to_string().contains("1x5000"), "{err}");
        assert!(err.to_string().contains("224x1120000"), "{err}");
        // The same sliver at a size it fits in is fine.
        assert!(Preprocessor::new(32).preprocess(png.get_ref()).is_ok());
    }

    #[test]
    fn premultiply_roundtrip_keeps_opaque_and_transparent_pixels() {
        let mut img = Interleaved {
            width: 2,
            height: 1,
            channels: 4,
            data: vec![10, 20, 30, 255, 40, 50, 60, 0],
        };
        premultiply(&mut img);
        assert_eq!(img.data, vec![10, 20, 30, 255, 0, 0, 0, 0]);
        unpremultiply(&mut img);
        assert_eq!(img.data, vec![10, 20, 30, 255, 0, 0, 0, 0]);
    }
}
