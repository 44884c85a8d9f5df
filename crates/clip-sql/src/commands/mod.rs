//! The subcommands of `clip-sql`, each its arguments and how it runs:
//! the [`shell`] (no subcommand: the [`repl`], `-c`, `-f`, each running
//! SQL through `clip_sql::sql_runner`), [`suite`], [`report`], [`bench`],
//! and the Ballista [`cluster`] processes; [`interrupts`] is how the shell
//! and cluster runs hear Ctrl-C. Their logic is in the library
//! (`clip_sql::suite`, `clip_sql::report`, `clip_sql::bench`, `datafusion_clip::distributed`).

pub mod bench;
#[cfg(feature = "ballista")]
pub mod cluster;
pub mod interrupts;
pub mod repl;
pub mod report;
pub mod shell;
pub mod suite;
