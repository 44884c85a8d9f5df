//! The subcommands of `clip-sql`, each its arguments and how it runs:
//! the [`shell`] (no subcommand: the [`repl`], `-c`, `-f`, each running
//! SQL through `clip_sql::statements`), [`suite`], [`report`], [`bench`],
//! and the Ballista [`cluster`] processes. Their logic is in the library
//! (`clip_sql::suite`, `clip_sql::report`, `clip_sql::bench`, `datafusion_clip::distributed`).

pub mod bench;
#[cfg(feature = "ballista")]
pub mod cluster;
pub mod repl;
pub mod report;
pub mod shell;
pub mod suite;
