//! The model crate's tests, as one binary (`cargo test -p clip-model`):
//! fidelity to the reference implementations (preprocessed pixels and
//! token ids against fixtures that Pillow, open_clip and the `clip`
//! package wrote; the towers against candle-transformers' CLIP on the same
//! weights), device normalisation, and the CUDA kernels' logic run on the
//! CPU. The repository's `tests/README.md` says what each test binary of
//! the workspace is for.

mod support;

mod cuda_kernels_on_cpu;
mod device_normalisation;
mod fidelity_models;
mod fidelity_preprocess;
mod fidelity_tokenizer;
mod model_reference;
