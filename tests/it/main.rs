//! The integration tests of the whole product, as one test binary: each
//! module below was a test file of its own, and each linked DataFusion,
//! candle and Ballista again. They run the real loader on tiny random
//! models, the `clip-sql` binary, and image tables they write themselves;
//! nothing here touches the network (`hub_download` runs a local stand-in).
//!
//! Tests that read or change process-wide state are in `process_wide/`;
//! the model crate's own tests (fidelity of pixels, tokens and towers, the
//! CUDA kernels on the CPU) in `crates/clip-model/tests/`; the library's
//! unit tests beside its code. `tests/README.md` lists them all.

#[path = "../common.rs"]
mod common;

mod architecture;
mod ballista;
mod benchmark_files;
mod cifar;
mod cli;
mod codec;
mod ensemble;
mod fidelity_zero_shot;
mod hub_download;
mod imagefolder;
mod one_sql_runner;
mod query_cancel;
mod readme_sql;
mod reliability;
mod report_page;
mod resnet_models;
mod retrieval;
mod sql_files;
mod sql_functions;
mod suite;
mod webdataset;
