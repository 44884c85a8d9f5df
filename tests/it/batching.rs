//! The model thread's batching: requests from several callers share one
//! forward pass, every caller gets its own rows back, a pass that runs out
//! of memory is split, and RGB bytes normalised on the device equal the
//! CPU preprocessing.

use crate::common;

use std::sync::mpsc;
use std::thread;

use candle_core::{DType, Device, Tensor};
use clip_model::{ComputeError, Preprocessor};
use clip_model::{ModelFiles, load_model};
use datafusion_clip::engine::cancel::CancelCheck;
use datafusion_clip::engine::worker::{
    ModelWorker, encode_rgb, normalise_on_device, split_on_out_of_memory,
};

fn tiny_worker() -> (std::sync::Arc<ModelWorker>, usize) {
    let files = ModelFiles::in_directory(common::tiny_model_dir()).unwrap();
    let model = load_model(&files, &Device::Cpu, DType::F32).unwrap();
    let size = model.config().vision_config.image_size;
    (
        ModelWorker::spawn(model, Device::Cpu, DType::F32, "tiny").unwrap(),
        size,
    )
}

/// `rows` crops of distinct images, as the engine sends them.
fn crops(size: usize, rows: usize, seed: u32) -> Vec<u8> {
    let pre = Preprocessor::new(size);
    (0..rows as u32)
        .flat_map(|i| {
            pre.resized_rgb(&common::png_bytes(40 + i, 30, seed * 100 + i))
                .unwrap()
        })
        .collect()
}

#[test]
fn queued_requests_of_several_callers_share_one_pass() {
    let (worker, size) = tiny_worker();
    let callers: Vec<_> = (0..4).map(|_| worker.image_caller()).collect();
    // Hold the model thread until all four requests are queued.
    let (release, hold) = mpsc::channel::<()>();
    let blocker = worker.submit(move |_| hold.recv().unwrap()).unwrap();
    let requests: Vec<Vec<u8>> = (0..4).map(|c| crops(size, 3, c)).collect();
    let pending: Vec<_> = requests
        .iter()
        .map(|rgb| {
            worker
                .submit_images(rgb.clone(), 3, size, 64, CancelCheck::now())
                .unwrap()
        })
        .collect();
    release.send(()).unwrap();
    blocker.wait().unwrap();
    let answers: Vec<Vec<f32>> = pending
        .into_iter()
        .map(|p| p.wait().unwrap().unwrap())
        .collect();
    assert_eq!(worker.image_passes(), 1, "four 3-row requests, one pass");
    drop(callers);

    // Each caller got its own rows: the same as encoding them alone.
    let files = ModelFiles::in_directory(common::tiny_model_dir()).unwrap();
    let model = load_model(&files, &Device::Cpu, DType::F32).unwrap();
    for (rgb, answer) in requests.iter().zip(&answers) {
        let alone = encode_rgb(&model, &Device::Cpu, DType::F32, rgb, 3, size).unwrap();
        assert_eq!(alone.len(), answer.len());
        let worst = alone
            .iter()
            .zip(answer)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "rows differ by {worst}");
    }
}

#[test]
fn a_request_larger_than_the_room_left_waits_for_the_next_pass() {
    let (worker, size) = tiny_worker();
    let (release, hold) = mpsc::channel::<()>();
    let blocker = worker.submit(move |_| hold.recv().unwrap()).unwrap();
    // batch_size 8: 5 + 5 rows do not fit one pass.
    let a = worker
        .submit_images(crops(size, 5, 1), 5, size, 8, CancelCheck::now())
        .unwrap();
    let b = worker
        .submit_images(crops(size, 5, 2), 5, size, 8, CancelCheck::now())
        .unwrap();
    release.send(()).unwrap();
    blocker.wait().unwrap();
    assert_eq!(a.wait().unwrap().unwrap().len() % 5, 0);
    assert_eq!(b.wait().unwrap().unwrap().len() % 5, 0);
    assert_eq!(worker.image_passes(), 2);
}

#[test]
fn concurrent_callers_get_their_own_rows() {
    let (worker, size) = tiny_worker();
    let handles: Vec<_> = (0..6u32)
        .map(|c| {
            let worker = worker.clone();
            thread::spawn(move || {
                let _caller = worker.image_caller();
                let rgb = crops(size, 1 + c as usize, c);
                let got = worker
                    .submit_images(rgb.clone(), 1 + c as usize, size, 16, CancelCheck::now())
                    .unwrap()
                    .wait()
                    .unwrap()
                    .unwrap();
                (rgb, got)
            })
        })
        .collect();
    let files = ModelFiles::in_directory(common::tiny_model_dir()).unwrap();
    let model = load_model(&files, &Device::Cpu, DType::F32).unwrap();
    for (c, handle) in handles.into_iter().enumerate() {
        let (rgb, got) = handle.join().unwrap();
        let alone = encode_rgb(&model, &Device::Cpu, DType::F32, &rgb, 1 + c, size).unwrap();
        assert_eq!(got.len(), alone.len());
        assert!(got.iter().zip(&alone).all(|(a, b)| (a - b).abs() < 1e-5));
    }
    assert!(worker.image_passes() <= 6);
}

/// A pass that ran out of device memory, as the model crate types it.
fn oom() -> ComputeError {
    ComputeError::OutOfMemory(candle_core::Error::Msg(
        "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into(),
    ))
}

#[test]
fn a_pass_out_of_memory_is_halved_and_later_passes_stay_small() {
    let mut fit = usize::MAX;
    let mut sizes = Vec::new();
    // Passes of more than 5 rows "run out of memory".
    let mut pass = |rows: std::ops::Range<usize>| {
        sizes.push(rows.len());
        if rows.len() > 5 {
            Err(oom())
        } else {
            Ok(rows.map(|r| r as f32).collect())
        }
    };
    let out = split_on_out_of_memory(0..16, &mut fit, &mut pass).unwrap();
    assert_eq!(out, (0..16).map(|r| r as f32).collect::<Vec<_>>());
    assert_eq!(fit, 4, "16 -> 8 -> 4 fits");
    assert_eq!(sizes, vec![16, 8, 4, 4, 4, 4]);
    // The next pass starts at the size that fitted.
    sizes.clear();
    let mut pass = |rows: std::ops::Range<usize>| {
        sizes.push(rows.len());
        Ok(vec![0f32; rows.len()])
    };
    split_on_out_of_memory(0..10, &mut fit, &mut pass).unwrap();
    assert_eq!(sizes, vec![4, 4, 2]);
}

#[test]
fn other_errors_and_single_rows_are_not_retried() {
    let mut fit = usize::MAX;
    let mut calls = 0;
    let mut pass = |_rows: std::ops::Range<usize>| {
        calls += 1;
        Err(ComputeError::Failed(candle_core::Error::Msg(
            "shape mismatch".into(),
        )))
    };
    assert!(split_on_out_of_memory(0..8, &mut fit, &mut pass).is_err());
    assert_eq!(calls, 1);
    let mut pass = |_rows: std::ops::Range<usize>| Err(oom());
    let e = split_on_out_of_memory(0..1, &mut fit, &mut pass).unwrap_err();
    assert!(e.is_out_of_memory(), "{e}");
}

#[test]
fn device_normalisation_equals_cpu_preprocessing_bit_for_bit() {
    let pre = Preprocessor::new(48);
    for (i, bytes) in [
        common::jpeg_bytes(500, 375, 1),
        common::png_bytes(31, 77, 2),
        common::gray_png_bytes(60, 40),
        common::rgba_png_bytes(50, 50),
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
