//! What the image tables' scans share: how many rows a batch holds, the
//! `skip_unreadable` table option, the column list their plans show, and
//! the parts of a leaf `ExecutionPlan` that do not depend on the format
//! (its properties, its partitions' work, having no children).

use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::{Result, internal_err, plan_err};
use datafusion::logical_expr::CreateExternalTable;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{ExecutionPlan, Partitioning, PlanProperties};

use crate::config::{ClipOptions, DEFAULT_BATCH_SIZE};

/// Rows per batch of an image scan: several forward passes, so decoding of
/// one pass can overlap the next, bounded by DataFusion's own batch size.
pub fn scan_batch_rows(state: &dyn Session) -> usize {
    let options = ClipOptions::from_config(state.config_options());
    let execution = &state.config_options().execution;
    (options.batch_size.unwrap_or(DEFAULT_BATCH_SIZE) * 4)
        .clamp(1, usize::from(execution.batch_size))
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

/// Properties of a scan of `partitions` groups (at least one partition,
/// empty when there is nothing to read), emitting batches as it reads.
pub fn scan_properties(schema: &SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(Arc::clone(schema)),
        Partitioning::UnknownPartitioning(partitions.max(1)),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

/// The work of `partition` of a scan planned as `groups`: nothing for the
/// one partition of a scan with no groups, an internal error past the end.
pub fn partition_group<T: Clone>(
    groups: &[Vec<T>],
    partition: usize,
    plan: &str,
) -> Result<Vec<T>> {
    match groups.get(partition) {
        Some(group) => Ok(group.clone()),
        None if groups.is_empty() => Ok(Vec::new()),
        None => internal_err!("{plan} has no partition {partition}"),
    }
}

/// `ExecutionPlan::with_new_children` of a scan, which has no children.
pub fn leaf_with_new_children(
    plan: Arc<dyn ExecutionPlan>,
    children: Vec<Arc<dyn ExecutionPlan>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if children.is_empty() {
        Ok(plan)
    } else {
        internal_err!("{} has no children", plan.name())
    }
}
