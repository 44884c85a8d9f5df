//! JPEG decoding that gives Pillow's pixels.
//!
//! Pillow decodes JPEG with libjpeg-turbo: the accurate integer IDCT
//! (`JDCT_ISLOW`), "fancy" triangular chroma upsampling, libjpeg's
//! fixed-point YCbCr -> RGB. image-rs's decoder (zune-jpeg) rounds its IDCT
//! and upsamples chroma differently: up to 4/255 per value apart after
//! CLIP's resize on 4:2:0 photographs. mozjpeg is libjpeg-turbo's decoder
//! (its changes are to the encoder) built from source by `mozjpeg-sys`,
//! with SIMD when `nasm` is installed and in plain C otherwise; both give
//! libjpeg-turbo's exact output.
//!
//! Four-component JPEGs are CMYK to Pillow, which assumes Adobe's inverted
//! convention (raw mode `CMYK;I`) and keeps CMYK through the resize; the
//! caller converts to RGB after cropping, as `convert("RGB")` does.

use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use mozjpeg_sys as ffi;

use super::error::ImageError;
use super::pixels::Interleaved;

/// The colour model of a decoded JPEG, as Pillow names its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JpegMode {
    L,
    Rgb,
    /// Not inverted: 0 is no ink.
    Cmyk,
}

/// Whether `bytes` start like a JPEG (SOI marker, then a marker).
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// A JPEG that libjpeg could not decode, and why.
fn corrupt(reason: String) -> ImageError {
    ImageError::Corrupt {
        what: "JPEG".to_string(),
        reason,
    }
}

/// libjpeg's text for the message the error manager holds.
fn message(cinfo: &mut ffi::jpeg_common_struct) -> String {
    let buffer = [0u8; 80];
    // SAFETY: `err` is the error manager installed in `decode_jpeg`, alive
    // for the whole decode; `format_message` writes at most 80 bytes.
    unsafe {
        if let Some(format) = cinfo.err.as_ref().and_then(|e| e.format_message) {
            format(cinfo, &buffer);
        }
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

/// A fatal libjpeg error, carried by unwinding out of the C code.
struct LibjpegError(String);

/// libjpeg's fatal-error hook, which must not return: unwind out of the C
/// code (mozjpeg-sys builds it to allow that) to `decode_jpeg`, which turns
/// exactly this payload into an error and lets any other unwind continue.
extern "C-unwind" fn error_exit(cinfo: &mut ffi::jpeg_common_struct) {
    resume_unwind(Box::new(LibjpegError(message(cinfo))));
}

/// libjpeg's message hook: warnings (level -1) are kept quiet, except that
/// a premature end of data marks the image truncated, which Pillow refuses.
extern "C-unwind" fn emit_message(cinfo: &mut ffi::jpeg_common_struct, level: c_int) {
    if level == -1 {
        // SAFETY: as in `message`.
        let code = unsafe { cinfo.err.as_ref().map(|e| e.msg_code) };
        if code == Some(ffi::JWRN_JPEG_EOF as c_int) && !cinfo.client_data.is_null() {
            // SAFETY: `client_data` points at `decode_jpeg`'s `truncated`.
            unsafe { *cinfo.client_data.cast::<bool>() = true };
        }
    }
}

/// Decode a JPEG to its samples at full resolution, refusing (before any
/// pixel buffer exists) one of more than `max_pixels` pixels.
pub fn decode_jpeg(bytes: &[u8], max_pixels: usize) -> Result<(Interleaved, JpegMode), ImageError> {
    let mut truncated = false;
    // SAFETY: zeroed structs are how libjpeg expects them before
    // jpeg_std_error / jpeg_create_decompress fill them in; the error
    // manager and `truncated` outlive `cinfo`, which is destroyed below on
    // every path, including after an unwind.
    let mut err: ffi::jpeg_error_mgr = unsafe { std::mem::zeroed() };
    let mut cinfo: ffi::jpeg_decompress_struct = unsafe { std::mem::zeroed() };
    // libjpeg keeps a pointer to the error manager: every access after this
    // one goes through that pointer.
    let err_ptr: *mut ffi::jpeg_error_mgr = &raw mut err;
    unsafe {
        ffi::jpeg_std_error(&mut *err_ptr);
        (*err_ptr).error_exit = Some(error_exit);
        (*err_ptr).emit_message = Some(emit_message);
    }
    cinfo.common.err = err_ptr;
    cinfo.common.client_data = (&raw mut truncated).cast();
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the calls follow libjpeg's decompression sequence; the
        // source buffer outlives the decode; each scanline pointer points at
        // a row of `data` of `width * channels` bytes.
        unsafe {
            ffi::jpeg_create_decompress(&mut cinfo);
            ffi::jpeg_mem_src(&mut cinfo, bytes.as_ptr(), bytes.len() as _);
            ffi::jpeg_read_header(&mut cinfo, 1);
            let pixels = cinfo.image_width as usize * cinfo.image_height as usize;
            if pixels > max_pixels {
                // Checked before any pixel buffer exists.
                return Err(ImageError::TooManyPixels {
                    what: "JPEG".to_string(),
                    width: cinfo.image_width as usize,
                    height: cinfo.image_height as usize,
                    max_pixels,
                });
            }
            // libjpeg's defaults are Pillow's: JDCT_ISLOW, fancy upsampling,
            // and the colour space the file declares.
            let mode = match cinfo.out_color_space {
                ffi::JCS_GRAYSCALE => JpegMode::L,
                ffi::JCS_CMYK => JpegMode::Cmyk,
                _ => {
                    cinfo.out_color_space = ffi::JCS_RGB;
                    JpegMode::Rgb
                }
            };
            ffi::jpeg_start_decompress(&mut cinfo);
            let width = cinfo.output_width as usize;
            let height = cinfo.output_height as usize;
            let channels = cinfo.output_components as usize;
            let stride = width * channels;
            let mut data = vec![0u8; stride * height];
            while (cinfo.output_scanline as usize) < height {
                let mut row = data
                    .as_mut_ptr()
                    .add(cinfo.output_scanline as usize * stride);
                if ffi::jpeg_read_scanlines(&mut cinfo, &mut row, 1) == 0 {
                    break;
                }
            }
            ffi::jpeg_finish_decompress(&mut cinfo);
            Ok((width, height, channels, mode, data))
        }
    }));
    // SAFETY: valid after create (and harmless on a zeroed struct if
    // create itself failed: libjpeg checks `mem` for NULL).
    unsafe { ffi::jpeg_destroy_decompress(&mut cinfo) };
    let (width, height, channels, mode, mut data) = match decoded {
        Ok(parts) => parts?,
        Err(payload) => match payload.downcast::<LibjpegError>() {
            Ok(error) => return Err(corrupt(error.0)),
            // Not libjpeg's error: a bug, which is not ours to hide.
            Err(other) => resume_unwind(other),
        },
    };
    if truncated {
        return Err(corrupt(
            "the file is truncated (premature end of data)".to_string(),
        ));
    }
    let expected_channels = match mode {
        JpegMode::L => 1,
        JpegMode::Rgb => 3,
        JpegMode::Cmyk => 4,
    };
    if width == 0 || height == 0 || channels != expected_channels {
        return Err(corrupt(format!(
            "{width}x{height} image with {channels} channels"
        )));
    }
    if mode == JpegMode::Cmyk {
        // Pillow's "CMYK;I": the file stores 255 - ink.
        data.iter_mut().for_each(|v| *v = 255 - *v);
    }
    Ok((
        Interleaved {
            width,
            height,
            channels,
            data,
        },
        mode,
    ))
}

/// Pillow's `convert("RGB")` of a CMYK image (`cmyk2rgb` in Convert.c):
/// `(255 - k) - c * (255 - k) / 255`, the product rounded as `MULDIV255`.
pub fn cmyk_to_rgb(image: &Interleaved) -> Interleaved {
    let muldiv255 = |a: u32, b: u32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    let data = image
        .data
        .chunks_exact(4)
        .flat_map(|px| {
            let nk = 255 - u32::from(px[3]);
            [0, 1, 2].map(|c| (nk - muldiv255(u32::from(px[c]), nk)) as u8)
        })
        .collect();
    Interleaved {
        width: image.width,
        height: image.height,
        channels: 3,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_conversion_is_pillows() {
        // Image.new("CMYK", (1, 1), c).convert("RGB") in Pillow 13.
        let img = Interleaved {
            width: 3,
            height: 1,
            channels: 4,
            data: vec![0, 0, 0, 0, 255, 0, 0, 0, 10, 100, 200, 50],
        };
        assert_eq!(
            cmyk_to_rgb(&img).data,
            vec![255, 255, 255, 0, 255, 255, 197, 125, 44]
        );
    }

    fn small_jpeg() -> Vec<u8> {
        // Busy enough that most of the file is scan data, not headers.
        let img = image::RgbImage::from_fn(160, 120, |x, y| {
            image::Rgb([x as u8, y as u8 * 2, ((x * 7) ^ (y * 13)) as u8])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_rgb_at_full_size() {
        let (img, mode) = decode_jpeg(&small_jpeg(), usize::MAX).unwrap();
        assert_eq!(
            (img.width, img.height, img.channels, mode),
            (160, 120, 3, JpegMode::Rgb)
        );
        // The smooth red ramp survives compression closely.
        let red_at = |x: usize| img.data[(60 * 160 + x) * 3];
        assert!(red_at(10).abs_diff(10) < 8 && red_at(150).abs_diff(150) < 8);
    }

    #[test]
    fn huge_declared_dimensions_are_refused_before_decoding() {
        let mut bytes = small_jpeg();
        // SOF0: FF C0, length (2), precision (1), height (2), width (2).
        let sof = bytes
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("baseline JPEG has SOF0");
        bytes[sof + 5..sof + 9].copy_from_slice(&[0x4E, 0x20, 0x4E, 0x20]);
        let err = decode_jpeg(&bytes, super::super::MAX_IMAGE_PIXELS).unwrap_err();
        assert!(err.to_string().contains("20000x20000"), "{err}");
        assert!(err.to_string().contains("decompression bomb"), "{err}");
    }

    #[test]
    fn broken_and_truncated_jpegs_are_errors_not_panics() {
        let err = decode_jpeg(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J'], usize::MAX).unwrap_err();
        assert!(err.to_string().contains("cannot decode JPEG"), "{err}");
        let whole = small_jpeg();
        let err = decode_jpeg(&whole[..whole.len() * 3 / 4], usize::MAX).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let err = decode_jpeg(&whole[..40], usize::MAX).unwrap_err();
        assert!(err.to_string().contains("cannot decode JPEG"), "{err}");
    }
}
