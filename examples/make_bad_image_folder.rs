//! Write an image folder with 1,000 good images and 100 bad ones of every
//! kind the functions must survive, to see a benchmark-shaped query return
//! 1,000 predictions, 100 NULLs with their reasons, and `n_failed = 100`.
//!
//! ```sh
//! cargo run --release --example make_bad_image_folder -- /tmp/mixed
//! cargo run --release --example make_random_model -- /tmp/vit-b-32-random ViT-B/32
//! clip-sql -f sql/examples/bad_images.sql   # reads /tmp/mixed with that model
//! ```
//!
//! The model's input size matters for one kind: resizing a 100000x1 sliver
//! for a 224-pixel model goes past `clip.max_image_pixels`, so it fails, while
//! a tiny 32-pixel test model scores it (1,012 predictions, 88 NULLs).
//!
//! Good: JPEG, PNG, 1x1, grayscale, RGBA, palette, CMYK JPEG, 16-bit PNG,
//! animated GIF and WebP. Bad: empty files, truncated JPEG/PNG/WebP, wrong
//! magic bytes, text named .jpg, a 100000x1 sliver, a decompression bomb
//! (a PNG header declaring 100000x100000 pixels).

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, Rgba};

// The repository's fixtures: this example belongs to crates/clip-model.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures");

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: make_bad_image_folder <dir>");
        std::process::exit(2);
    };
    if let Err(e) = write_folder(Path::new(&dir)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn write_folder(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    for label in ["cat", "dog"] {
        std::fs::create_dir_all(dir.join(label))?;
    }
    let fixture = |rel: &str| std::fs::read(format!("{FIXTURES}/{rel}"));
    let good_fixtures = [
        ("palette.png", fixture("images/p_150x100.png")?),
        ("cmyk.jpg", fixture("images/cmyk_200x150.jpg")?),
        ("sixteen_bit.png", fixture("images/rgb16_160x120.png")?),
        ("animated.gif", fixture("animated/animated_3_frames.gif")?),
        ("animated.webp", fixture("animated/animated_3_frames.webp")?),
    ];
    for i in 0..1000u32 {
        let label = if i % 2 == 0 { "cat" } else { "dog" };
        let (name, bytes) = match i % 10 {
            0..=3 => (
                "photo.jpg",
                encode(&rgb(96 + i % 64, 80, i), ImageFormat::Jpeg)?,
            ),
            4 => (
                "photo.png",
                encode(&rgb(120, 90 + i % 32, i), ImageFormat::Png)?,
            ),
            5 => ("one_by_one.png", encode(&rgb(1, 1, i), ImageFormat::Png)?),
            6 => ("gray.png", encode(&gray(70, 50), ImageFormat::Png)?),
            7 => ("rgba.png", encode(&rgba(64, 48), ImageFormat::Png)?),
            _ => {
                let (name, bytes) = &good_fixtures[(i as usize / 10) % good_fixtures.len()];
                (*name, bytes.clone())
            }
        };
        std::fs::write(dir.join(label).join(format!("good_{i:04}_{name}")), bytes)?;
    }
    let jpeg = encode(&rgb(160, 120, 1), ImageFormat::Jpeg)?;
    let png = encode(&rgb(160, 120, 2), ImageFormat::Png)?;
    let webp = fixture("images/rgb_400x300_lossy.webp")?;
    let mut wrong_magic = png.clone();
    wrong_magic[..4].copy_from_slice(b"GARB");
    let bad: [(&str, Vec<u8>); 8] = [
        ("empty.jpg", Vec::new()),
        ("truncated.jpg", jpeg[..jpeg.len() / 2].to_vec()),
        ("truncated.png", png[..png.len() / 2].to_vec()),
        ("truncated.webp", webp[..webp.len() / 2].to_vec()),
        ("wrong_magic.png", wrong_magic),
        ("not_an_image.jpg", b"<html>404 not found</html>".to_vec()),
        (
            "sliver_100000x1.png",
            encode(&rgb(100_000, 1, 3), ImageFormat::Png)?,
        ),
        ("bomb_100000x100000.png", png_declaring(100_000, 100_000)),
    ];
    for i in 0..100usize {
        let label = if i % 2 == 0 { "cat" } else { "dog" };
        let (name, bytes) = &bad[i % bad.len()];
        std::fs::write(dir.join(label).join(format!("bad_{i:03}_{name}")), bytes)?;
    }
    println!("wrote 1000 good and 100 bad images under {}", dir.display());
    Ok(())
}

fn rgb(width: u32, height: u32, seed: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([
            (x * 255 / width.max(1)) as u8,
            (y * 255 / height.max(1)) as u8,
            ((x ^ y).wrapping_mul(seed.wrapping_mul(37) + 11) % 256) as u8,
        ])
    }))
}

fn gray(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageLuma8(ImageBuffer::from_fn(width, height, |x, y| {
        Luma([((x * 7 + y * 3) % 256) as u8])
    }))
}

fn rgba(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgba8(ImageBuffer::from_fn(width, height, |x, y| {
        Rgba([
            (x * 9 % 256) as u8,
            (y * 5 % 256) as u8,
            90,
            ((x + y) * 13 % 256) as u8,
        ])
    }))
}

fn encode(image: &DynamicImage, format: ImageFormat) -> image::ImageResult<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format)?;
    Ok(out.into_inner())
}

/// A PNG whose header declares `width x height` with next to no data.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}
