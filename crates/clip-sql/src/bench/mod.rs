//! `clip-sql bench`: the article's efficiency table (batch-1 latency, images/s
//! at the best batch size, prompts/s, peak device and host memory) and the
//! end-to-end images/s of a SQL query over a folder of JPEGs with its time
//! split. `benches/peer/` measures the same figures with PyTorch.

pub mod end_to_end;
pub mod error;
pub mod memory;
pub mod model_speed;
pub mod random_models;
pub mod report;

pub use end_to_end::{EndToEnd, measure_end_to_end};
pub use error::BenchError;
pub use model_speed::{BatchOutcome, ModelSpeed, SpeedSettings, measure_model};
