//! The settings every `clip-sql` session starts from, whichever command
//! opens it (the shell, the suite, the report, the bench).

use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion_clip::ClipOptions;

/// DataFusion's settings from the environment (`DATAFUSION_*`), NULL
/// shown as `NULL` as datafusion-cli shows it, and the `clip.*` settings
/// with their defaults.
pub fn base_options() -> Result<ConfigOptions> {
    let mut options = ConfigOptions::from_env()?;
    options.format.null = "NULL".to_string();
    options.extensions.insert(ClipOptions::default());
    Ok(options)
}
