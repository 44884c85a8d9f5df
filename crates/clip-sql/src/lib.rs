//! # clip-sql
//!
//! The `clip-sql` command's logic, kept here so it can be tested: the
//! benchmark [`suite`] (the article's evaluation as SQL files over several
//! models) and its [`report`] (tables, CLIP_benchmark JSON, charts and one
//! page, rebuilt from saved predictions by `clip-sql report`), the efficiency
//! [`bench`](mod@bench) (latency, images/s, memory) and the `--param` placeholders of
//! SQL files ([`sql_params`]), and how the shell runs SQL text
//! ([`statements`]). The SQL functions and tables themselves are
//! the `datafusion-clip` library; the binary (`main.rs`, `commands/`) only
//! parses arguments and runs these.

// Data paths never panic: a bad row is a NULL or an error naming it. Tests
// may unwrap; code that ships may not.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bench;
pub mod file_name;
pub mod report;
pub mod sql_params;
pub mod statements;
pub mod suite;
