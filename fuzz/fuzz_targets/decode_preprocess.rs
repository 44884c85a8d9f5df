//! Any bytes through the image path every CLIP function takes: format
//! sniffing, decoding (libjpeg-turbo, image-rs), the pixel limit, PIL's
//! resize and the crop. It must return pixels or an `ImageError`, never
//! panic, abort or read out of bounds.
#![no_main]

use clip_model::Preprocessor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A lower pixel limit than the default keeps each input within
    // libFuzzer's memory limit; the checks are the same code.
    let preprocessor = Preprocessor::new(224).with_max_pixels(1 << 22);
    // `check` is what `clip_image_error` reports: it must agree with the
    // path that embeds.
    let checked = preprocessor.check(data);
    match preprocessor.preprocess(data) {
        Ok(pixels) => {
            assert!(checked.is_ok(), "{checked:?}");
            assert_eq!(pixels.len(), preprocessor.pixels_per_image());
            assert!(pixels.iter().all(|v| v.is_finite()));
        }
        Err(e) => assert!(checked.is_err(), "check passed, preprocess failed: {e}"),
    }
});
