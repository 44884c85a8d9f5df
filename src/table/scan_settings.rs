//! What the image tables' scans share: how many rows a batch holds, the
//! `skip_unreadable` table option, and the column list their plans show.

use datafusion::arrow::datatypes::Schema;
use datafusion::catalog::Session;
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::CreateExternalTable;

use crate::config::ClipOptions;

/// Rows per batch of an image scan: several forward passes, so decoding of
/// one pass can overlap the next, bounded by DataFusion's own batch size.
pub fn scan_batch_rows(state: &dyn Session) -> usize {
    let options = ClipOptions::from_config(state.config_options());
    let execution = &state.config_options().execution;
    (options.batch_size * 4).clamp(1, usize::from(execution.batch_size))
}

/// The `skip_unreadable` option of a `CREATE EXTERNAL TABLE ... STORED AS
/// <format>`, the only option these formats take; `what_it_does` ends the
/// message for an unknown option.
pub fn skip_unreadable_option(
    format: &str,
    cmd: &CreateExternalTable,
    what_it_does: &str,
) -> Result<bool> {
    let mut skip_unreadable = false;
    for (key, value) in &cmd.options {
        // DataFusion prefixes options written without a namespace with `format.`.
        match key.strip_prefix("format.").unwrap_or(key) {
            "skip_unreadable" => {
                skip_unreadable = match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return plan_err!(
                            "{format} option 'skip_unreadable' must be 'true' or 'false', got '{value}'"
                        );
                    }
                }
            }
            other => {
                return plan_err!(
                    "unknown {format} option '{other}'; the one option is 'skip_unreadable' \
                     ('true': {what_it_does})"
                );
            }
        }
    }
    Ok(skip_unreadable)
}

/// `a, b, c`: a scan's columns as its plan line shows them.
pub fn column_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
