//! RGB bytes normalised on the device (`clip_model::embed`) equal the CPU
//! preprocessing's pixels bit for bit, so the engine may send 8-bit crops
//! to the GPU and normalise there.

use candle_core::{Device, Tensor};
use clip_model::Preprocessor;
use clip_model::embed::normalise_on_device;

use crate::support;

#[test]
fn device_normalisation_equals_cpu_preprocessing_bit_for_bit() {
    let pre = Preprocessor::new(48);
    for (i, bytes) in [
        support::jpeg_bytes(500, 375, 1),
        support::png_bytes(31, 77, 2),
        support::gray_png_bytes(60, 40),
        support::rgba_png_bytes(50, 50),
    ]
    .iter()
    .enumerate()
    {
        let expected = pre.preprocess(bytes).unwrap();
        let rgb = pre.resized_rgb(bytes).unwrap();
        let x = Tensor::from_vec(rgb, (1, 48, 48, 3), &Device::Cpu).unwrap();
        let got: Vec<f32> = normalise_on_device(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(got, expected, "image {i}");
    }
}
