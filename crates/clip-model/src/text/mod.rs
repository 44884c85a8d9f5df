//! Text to token ids, as OpenAI's `clip.tokenize` computes them: the
//! reference's clean-up ([`clean`]) then byte-level BPE ([`tokenizer`]).

pub mod clean;
pub mod tokenizer;

pub use tokenizer::{CONTEXT_LENGTH, ClipTokenizer, Tokens};
