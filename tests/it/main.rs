//! The integration tests of the whole product, as one test binary: each
//! module below was a test file of its own, and each linked DataFusion,
//! candle and Ballista again. They run the real loader on tiny random
//! models, the `clip-sql` binary, and image tables they write themselves;
//! nothing here touches the network (`hub_download` runs a local stand-in).
//!
//! Tests that read or change process-wide state are in `process_wide/`.

#[path = "../common.rs"]
mod common;

mod ballista;
mod batching;
mod benchmark_files;
mod cifar;
mod cli;
mod codec;
mod cuda_kernels_on_cpu;
mod ensemble;
mod fidelity_models;
mod fidelity_preprocess;
mod fidelity_tokenizer;
mod hub_download;
mod imagefolder;
mod model_reference;
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
