//! What the CLIP functions share: reading the model, image, embedding and
//! list arguments from Arrow ([`args`]; [`image_arg`] builds on it) and the zero-shot
//! computation behind `clip_zero_shot` and `clip_zero_shot_probs`
//! ([`zero_shot_rows`]).

pub mod args;
pub mod image_arg;
pub mod zero_shot_rows;
