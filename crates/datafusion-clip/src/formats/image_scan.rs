//! What the image tables' scans share, written once: the physical plan
//! ([`ImageScanExec`], generic over what one format reads — its
//! [`ScanSource`]), how many rows a batch holds, the options and location
//! checks of `CREATE EXTERNAL TABLE`, and the column list their plans show.
//!
//! A format only says what its partitions read and how: IMAGEFOLDER's files,
//! WEBDATASET's shards, CIFAR's record ranges. All of it is plain data, so
//! a plan that scans an image table can be serialised to another process
//! (`crate::codec`) and rebuilt there.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, Statistics, internal_err, plan_err};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::CreateExternalTable;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use object_store::ObjectStore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::object_stores::scan_object_store;
use crate::config::{ClipOptions, DEFAULT_BATCH_SIZE};

/// What one image format's scan reads: the work of each partition, as
/// plain data.
pub trait ScanSource:
    fmt::Debug + Clone + PartialEq + Send + Sync + Serialize + DeserializeOwned + 'static
{
    /// The plan's name, as `EXPLAIN` shows it (`ImageFolderExec`).
    const NAME: &'static str;

    /// The table's schema, which projections index.
    fn table_schema(&self) -> SchemaRef;

    /// How many partitions the scan was planned with (0 for nothing to read).
    fn partition_count(&self) -> usize;

    /// What the plan line shows between the store and the columns, e.g.
    /// `files=3, partitions=2`.
    fn describe(&self, f: &mut fmt::Formatter) -> fmt::Result;

    /// The stream of `partition`, reading from `store`.
    fn open(&self, partition: usize, scan: PartitionScan<'_>) -> Result<SendableRecordBatchStream>;

    /// Whether the parts fit together (a plan from another process may
    /// not): checked before the scan is built.
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Rows (and bytes) of `partition`, or of all when `None`, as far as
    /// the plan knows them.
    fn statistics(
        &self,
        _partition: Option<usize>,
        _projection: &[usize],
        _stats: &mut Statistics,
    ) {
    }
}

/// What [`ScanSource::open`] gets besides the partition number.
pub struct PartitionScan<'a> {
    pub store: Arc<dyn ObjectStore>,
    /// Indices into the table schema.
    pub projection: &'a [usize],
    /// The projected schema the stream's batches have.
    pub schema: SchemaRef,
    pub metrics: &'a ExecutionPlanMetricsSet,
}

/// The physical scan of an image table of format `S`.
#[derive(Debug, Clone)]
pub struct ImageScanExec<S: ScanSource> {
    store_url: ObjectStoreUrl,
    /// Indices into the table schema.
    projection: Vec<usize>,
    source: S,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

/// What an [`ImageScanExec`] is made of: plain data, so that the plan can
/// be sent to another process and rebuilt there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanParts<S> {
    pub store_url: String,
    pub projection: Vec<usize>,
    pub source: S,
}

impl<S: ScanSource> ImageScanExec<S> {
    /// A scan of `source`'s partitions from the store at `store_url`.
    pub fn try_new(store_url: &ObjectStoreUrl, projection: Vec<usize>, source: S) -> Result<Self> {
        Self::from_parts(ScanParts {
            store_url: store_url.as_str().to_string(),
            projection,
            source,
        })
    }

    /// The scan `parts` describe, partitioned as they say.
    pub fn from_parts(parts: ScanParts<S>) -> Result<Self> {
        parts.source.check()?;
        let schema = Arc::new(parts.source.table_schema().project(&parts.projection)?);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            // At least one partition, empty when there is nothing to read.
            Partitioning::UnknownPartitioning(parts.source.partition_count().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Self {
            store_url: ObjectStoreUrl::parse(&parts.store_url)?,
            projection: parts.projection,
            source: parts.source,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The data this scan is made of.
    pub fn to_parts(&self) -> ScanParts<S> {
        ScanParts {
            store_url: self.store_url.as_str().to_string(),
            projection: self.projection.clone(),
            source: self.source.clone(),
        }
    }
}

impl<S: ScanSource> DisplayAs for ImageScanExec<S> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: store={}, ", S::NAME, self.store_url.as_str())?;
        self.source.describe(f)?;
        write!(f, ", columns=[{}]", column_list(&self.schema))
    }
}

impl<S: ScanSource> ExecutionPlan for ImageScanExec<S> {
    fn name(&self) -> &str {
        S::NAME
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            internal_err!("{} has no children", S::NAME)
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        // The one partition of a scan with nothing to read is empty.
        let planned = self.source.partition_count();
        if partition >= planned.max(1) {
            return internal_err!("{} has no partition {partition}", S::NAME);
        }
        let scan = PartitionScan {
            store: scan_object_store(&context.runtime_env(), &self.store_url)?,
            projection: &self.projection,
            schema: Arc::clone(&self.schema),
            metrics: &self.metrics,
        };
        if planned == 0 {
            let empty = futures::stream::empty();
            return Ok(Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    scan.schema,
                    empty,
                ),
            ));
        }
        self.source.open(partition, scan)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.schema);
        self.source
            .statistics(partition, &self.projection, &mut stats);
        Ok(Arc::new(stats))
    }
}

/// The work of `partition` of a scan planned as `groups`: nothing past the
/// end (the one partition of a scan with no groups).
pub fn partition_group<T: Clone>(groups: &[Vec<T>], partition: usize) -> Vec<T> {
    groups.get(partition).cloned().unwrap_or_default()
}

/// Exact row count `rows` in `stats`.
pub fn exact_rows(stats: &mut Statistics, rows: usize) {
    stats.num_rows = Precision::Exact(rows);
}

/// Image bytes a scan puts in one batch at most, unless one image alone is
/// larger (up to `clip.max_image_bytes`, at most 1 GiB): an image column's
/// offsets are 32-bit, so a batch must stay under 2 GiB of images, and a
/// batch of huge TIFFs should not hold hundreds of them at once.
pub const BATCH_IMAGE_BYTES: usize = 256 << 20;

/// `clip.max_image_bytes` of a scan serialised before the setting existed.
pub fn default_max_image_bytes() -> usize {
    crate::config::DEFAULT_MAX_IMAGE_BYTES
}

/// Split items into runs of at most `max_rows` items whose `bytes` add up
/// to at most `max_bytes`, except a run of one larger item.
pub fn chunks_by_rows_and_bytes<T: Clone>(
    items: &[T],
    max_rows: usize,
    max_bytes: usize,
    bytes: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut current: Vec<T> = Vec::new();
    let mut current_bytes = 0usize;
    for item in items {
        let size = bytes(item);
        if !current.is_empty()
            && (current.len() >= max_rows || current_bytes.saturating_add(size) > max_bytes)
        {
            chunks.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes = current_bytes.saturating_add(size);
        current.push(item.clone());
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// An image column of `images`, or an error (never arrow's panic) if
/// together they overflow its 32-bit offsets, which the byte budget of
/// the scans prevents unless files grew after they were listed.
pub fn binary_column<'a>(
    images: impl Iterator<Item = Option<&'a [u8]>> + Clone,
) -> Result<datafusion::arrow::array::BinaryArray> {
    let (rows, total) = images.clone().fold((0usize, 0usize), |(n, t), i| {
        (n + 1, t + i.map_or(0, <[u8]>::len))
    });
    if total > i32::MAX as usize {
        return datafusion::common::exec_err!(
            "{total} bytes of images in one batch of {rows} rows, more than an image column \
             holds (2 GiB); lower clip.max_image_bytes"
        );
    }
    let mut builder = datafusion::arrow::array::BinaryBuilder::with_capacity(rows, total);
    images.for_each(|image| builder.append_option(image));
    Ok(builder.finish())
}

/// The image column of a batch. One image alone (a large file has a batch
/// of its own) becomes the column's buffer as read, without a copy, so a
/// large file is held in memory once, not twice.
pub fn image_column(
    images: &[Option<bytes::Bytes>],
) -> Result<datafusion::arrow::array::BinaryArray> {
    match single_image_column(images) {
        Some(column) => Ok(column),
        None => binary_column(images.iter().map(|image| image.as_deref())),
    }
}

/// [`image_column`] of a batch with one image: `None` otherwise.
fn single_image_column(
    images: &[Option<bytes::Bytes>],
) -> Option<datafusion::arrow::array::BinaryArray> {
    let mut present = images
        .iter()
        .enumerate()
        .filter_map(|(row, image)| image.as_ref().map(|bytes| (row, bytes)));
    let (row, bytes) = present.next()?;
    if present.next().is_some() {
        return None;
    }
    let len = i32::try_from(bytes.len()).ok()?;
    // Rows up to `row` end at 0, the rest at `len`: only `row` has bytes.
    let offsets: Vec<i32> = (0..=images.len())
        .map(|i| if i <= row { 0 } else { len })
        .collect();
    let nulls = datafusion::arrow::buffer::NullBuffer::from(
        images.iter().map(Option::is_some).collect::<Vec<bool>>(),
    );
    datafusion::arrow::array::BinaryArray::try_new(
        datafusion::arrow::buffer::OffsetBuffer::new(offsets.into()),
        datafusion::arrow::buffer::Buffer::from(bytes.clone()),
        Some(nulls),
    )
    .ok()
}

/// A file or WebDataset member of `size` bytes, more than
/// `clip.max_image_bytes`: with `is_error` (`clip.on_error = 'error'`) an
/// error naming it (`what`), otherwise logged and counted in `counter`; the
/// caller gives it a NULL value.
pub fn oversized_image(
    format: &str,
    what: &str,
    size: u64,
    max_image_bytes: usize,
    is_error: bool,
    counter: &datafusion::physical_plan::metrics::Count,
) -> Result<()> {
    let what =
        format!("{what} is {size} bytes, more than clip.max_image_bytes = {max_image_bytes}");
    if is_error {
        return datafusion::common::exec_err!(
            "{what} (SET clip.max_image_bytes, up to 1 GiB, to read it; with clip.on_error = \
             'null' it is a NULL value instead)"
        );
    }
    log::warn!("{format}: {what}: its value is NULL");
    counter.add(1);
    Ok(())
}

/// Rows per batch of an image scan: several forward passes, so decoding of
/// one pass can overlap the next, bounded by DataFusion's own batch size.
pub fn scan_batch_rows(state: &dyn Session) -> usize {
    let options = ClipOptions::from_config(state.config_options());
    let execution = &state.config_options().execution;
    (options.batch_size.unwrap_or(DEFAULT_BATCH_SIZE) * 4)
        .clamp(1, usize::from(execution.batch_size))
}

/// The columns a `TableProvider::scan` reads: its projection, or all of
/// `schema`'s.
pub fn projection_or_all(projection: Option<&Vec<usize>>, schema: &Schema) -> Vec<usize> {
    projection
        .cloned()
        .unwrap_or_else(|| (0..schema.fields().len()).collect())
}

/// The one location of a `CREATE EXTERNAL TABLE ... STORED AS <format>`;
/// `hint` says what to write instead of several.
pub fn one_location<'a>(format: &str, cmd: &'a CreateExternalTable, hint: &str) -> Result<&'a str> {
    match cmd.locations.as_slice() {
        [location] => Ok(location),
        locations => plan_err!(
            "{format} tables have one location, got {}; {hint}",
            locations.len()
        ),
    }
}

/// Refuses the clauses of a `CREATE EXTERNAL TABLE ... STORED AS <format>`
/// these formats have no use for, which DataFusion hands to every factory:
/// ignored, a `WITH ORDER` or `PARTITIONED BY` the user wrote would be lost
/// without a word.
pub fn refuse_unused_clauses(format: &str, cmd: &CreateExternalTable) -> Result<()> {
    if !cmd.table_partition_cols.is_empty() {
        return plan_err!(
            "{format} tables take no PARTITIONED BY ({}): their columns come from the format; \
             filter on them in the query instead",
            cmd.table_partition_cols.join(", ")
        );
    }
    if !cmd.order_exprs.is_empty() {
        return plan_err!(
            "{format} tables take no WITH ORDER: their rows come in no declared order; write \
             ORDER BY in the query instead"
        );
    }
    if cmd.unbounded {
        return plan_err!(
            "{format} tables are bounded (their files are read once); leave out UNBOUNDED"
        );
    }
    if !cmd.constraints.is_empty() || !cmd.column_defaults.is_empty() {
        return plan_err!("{format} tables take no constraints or column defaults");
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_at_the_row_count_or_the_byte_budget() {
        let sizes = [10, 10, 10, 50, 10, 200, 5];
        let chunks = chunks_by_rows_and_bytes(&sizes, 3, 60, |&s| s);
        // Rows cap the first; 50 + 10 fit 60; 200 is alone, being larger.
        assert_eq!(chunks, [vec![10, 10, 10], vec![50, 10], vec![200], vec![5]]);
        assert!(chunks_by_rows_and_bytes(&[] as &[usize], 3, 60, |&s| s).is_empty());
    }

    #[test]
    fn one_image_becomes_its_column_without_a_copy() {
        use datafusion::arrow::array::Array;
        let image = bytes::Bytes::from(vec![7u8; 10]);
        let column = single_image_column(&[None, Some(image.clone()), None]).unwrap();
        assert_eq!(column.len(), 3);
        assert!(column.is_null(0) && column.is_valid(1) && column.is_null(2));
        assert_eq!(column.value(1), &image[..]);
        assert_eq!(column.value_data().as_ptr(), image.as_ptr());
        let two = [Some(image.clone()), Some(image)];
        assert!(single_image_column(&two).is_none());
        assert!(single_image_column(&[None, None]).is_none());
    }

    #[test]
    fn an_image_column_of_more_than_2_gib_is_an_error_not_a_panic() {
        use datafusion::arrow::array::Array;
        let column = binary_column([Some(&b"ab"[..]), None].into_iter()).unwrap();
        assert_eq!(column.len(), 2);
        // Length arithmetic only: a slice that claims 2^31 bytes is never
        // built; the check runs before any byte is copied.
        let huge = vec![0u8; 1 << 20];
        let many = std::iter::repeat_n(Some(&huge[..]), 2048);
        let err = binary_column(many).unwrap_err().to_string();
        assert!(err.contains("more than an image column holds"), "{err}");
    }
}
