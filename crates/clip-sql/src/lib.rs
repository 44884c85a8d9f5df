//! # clip-sql
//!
//! The `clip-sql` command's logic, kept here so it can be tested: the
//! benchmark [`suite`] (the article's evaluation as SQL files over several
//! models) and its [`report`] (tables, CLIP_benchmark JSON, charts and one
//! page, rebuilt from saved predictions by `clip-sql report`), the efficiency
//! [`bench`](mod@bench) (latency, images/s, memory). Beneath them: the one
//! way SQL text runs, for the shell, the suite and the report alike
//! ([`sql_runner`]), the `--param` placeholders of SQL files
//! ([`sql_params`]), the dataset [`catalogue`], the settings sessions
//! start from ([`session_options`]) and the [`files`] it writes. The SQL
//! functions and tables themselves are the `datafusion-clip` library; the
//! binary (`main.rs`, `commands/`) only parses arguments and runs these.
//!
//! Layers, each using only those below it: `commands/` (the binary) →
//! [`suite`] → [`report`] → [`sql_runner`], [`sql_params`], [`catalogue`],
//! [`session_options`], [`files`]; [`bench`](mod@bench) beside the
//! suite.

// Data paths never panic: a bad row is a NULL or an error naming it. Tests
// may unwrap; code that ships may not.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bench;
pub mod catalogue;
pub mod files;
pub mod report;
pub mod session_options;
pub mod sql_params;
pub mod sql_runner;
pub mod suite;
