//! Valid images of any shape and mode (gray, gray+alpha, RGB, RGBA, 8 or
//! 16 bits, 1 to 300 pixels a side) through the resize and crop, whatever
//! SIMD path the CPU takes (the AVX2 resize on this machine): always a
//! `size x size` RGB crop, never a panic.
#![no_main]

use clip_model::Preprocessor;
use image::{DynamicImage, ImageBuffer, ImageFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let width = 1 + u32::from(data[0]) % 300;
    let height = 1 + u32::from(data[1]) % 300;
    let size = [224usize, 336, 5, 1][usize::from(data[2] % 4)];
    let pixels = &data[4..];
    let sample = |i: usize| pixels.get(i % pixels.len().max(1)).copied().unwrap_or(0);
    let image = match data[3] % 6 {
        0 => DynamicImage::ImageLuma8(ImageBuffer::from_fn(width, height, |x, y| {
            image::Luma([sample((y * width + x) as usize)])
        })),
        1 => DynamicImage::ImageLumaA8(ImageBuffer::from_fn(width, height, |x, y| {
            let i = 2 * (y * width + x) as usize;
            image::LumaA([sample(i), sample(i + 1)])
        })),
        2 => DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
            let i = 3 * (y * width + x) as usize;
            image::Rgb([sample(i), sample(i + 1), sample(i + 2)])
        })),
        3 => DynamicImage::ImageRgba8(ImageBuffer::from_fn(width, height, |x, y| {
            let i = 4 * (y * width + x) as usize;
            image::Rgba([sample(i), sample(i + 1), sample(i + 2), sample(i + 3)])
        })),
        4 => DynamicImage::ImageLuma16(ImageBuffer::from_fn(width, height, |x, y| {
            let i = 2 * (y * width + x) as usize;
            image::Luma([u16::from_le_bytes([sample(i), sample(i + 1)])])
        })),
        _ => DynamicImage::ImageRgb16(ImageBuffer::from_fn(width, height, |x, y| {
            let i = 6 * (y * width + x) as usize;
            let s = |k: usize| u16::from_le_bytes([sample(i + k), sample(i + k + 1)]);
            image::Rgb([s(0), s(2), s(4)])
        })),
    };
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, ImageFormat::Png).unwrap();
    let rgb = Preprocessor::new(size)
        .resized_rgb(png.get_ref())
        .expect("a valid image within the pixel limit preprocesses");
    assert_eq!(rgb.len(), size * size * 3);
});
