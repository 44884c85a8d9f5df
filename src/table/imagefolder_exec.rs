//! The scan of an IMAGEFOLDER table: files split into contiguous groups, one
//! per partition; each partition reads its files through the object store a
//! few at a time and emits batches of `batch_rows` rows.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, RecordBatch, RecordBatchOptions, StringBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, Statistics, internal_err};
use datafusion::error::DataFusionError;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::imagefolder::imagefolder_schema;
use super::scan_settings::{column_list, leaf_with_new_children, partition_group, scan_properties};

/// Files fetched at once per partition: enough to hide object-store
/// latency, few enough to keep memory to a handful of images.
const CONCURRENT_READS: usize = 8;

/// One image file of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFile {
    /// Object-store path.
    pub location: String,
    /// What the `path` column shows: a filesystem path or a URL.
    pub path: String,
    /// Parent directory name.
    pub label: Option<String>,
    pub size: u64,
}

/// Physical scan of an image folder.
#[derive(Debug, Clone)]
pub struct ImageFolderExec {
    store_url: ObjectStoreUrl,
    /// Files per partition.
    groups: Vec<Vec<ImageFile>>,
    /// Indices into the table schema (`path`, `label`, `image`).
    projection: Vec<usize>,
    batch_rows: usize,
    /// An unreadable file gives a NULL image instead of failing the scan.
    skip_unreadable: bool,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

/// What an [`ImageFolderExec`] is made of: plain data, so that the plan
/// can be sent to another process (`super::codec`) and rebuilt there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageFolderScanParts {
    pub store_url: String,
    /// Files per partition.
    pub groups: Vec<Vec<ImageFile>>,
    pub projection: Vec<usize>,
    pub batch_rows: usize,
    pub skip_unreadable: bool,
}

impl ImageFolderExec {
    pub fn try_new(
        store_url: ObjectStoreUrl,
        files: Vec<ImageFile>,
        projection: Vec<usize>,
        target_partitions: usize,
        batch_rows: usize,
    ) -> Result<Self> {
        Self::from_parts(ImageFolderScanParts {
            store_url: store_url.as_str().to_string(),
            groups: split_into_groups(files, target_partitions),
            projection,
            batch_rows,
            skip_unreadable: false,
        })
    }

    /// The scan `parts` describe, partitioned as they say.
    pub fn from_parts(parts: ImageFolderScanParts) -> Result<Self> {
        let schema = Arc::new(imagefolder_schema().project(&parts.projection)?);
        let properties = scan_properties(&schema, parts.groups.len());
        Ok(Self {
            store_url: ObjectStoreUrl::parse(&parts.store_url)?,
            groups: parts.groups,
            projection: parts.projection,
            batch_rows: parts.batch_rows.max(1),
            skip_unreadable: parts.skip_unreadable,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The data this scan is made of.
    pub fn to_parts(&self) -> ImageFolderScanParts {
        ImageFolderScanParts {
            store_url: self.store_url.as_str().to_string(),
            groups: self.groups.clone(),
            projection: self.projection.clone(),
            batch_rows: self.batch_rows,
            skip_unreadable: self.skip_unreadable,
        }
    }

    /// Whether an unreadable file gives a row with a NULL image (and is
    /// counted in the `unreadable_files` metric) rather than an error.
    pub fn with_skip_unreadable(self, skip_unreadable: bool) -> Self {
        Self {
            skip_unreadable,
            ..self
        }
    }

    /// Files per partition.
    pub fn groups(&self) -> &[Vec<ImageFile>] {
        &self.groups
    }

    fn file_count(&self) -> usize {
        self.groups.iter().map(Vec::len).sum()
    }
}

/// Contiguous groups of nearly equal size, at most `partitions` of them.
fn split_into_groups(files: Vec<ImageFile>, partitions: usize) -> Vec<Vec<ImageFile>> {
    if files.is_empty() {
        return Vec::new();
    }
    let per_group = files.len().div_ceil(partitions.max(1));
    let mut groups = Vec::new();
    let mut files = files.into_iter().peekable();
    while files.peek().is_some() {
        groups.push(files.by_ref().take(per_group).collect());
    }
    groups
}

impl DisplayAs for ImageFolderExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ImageFolderExec: store={}, files={}, partitions={}, columns=[{}]{}",
            self.store_url.as_str(),
            self.file_count(),
            self.groups.len(),
            column_list(&self.schema),
            if self.skip_unreadable {
                ", skip_unreadable"
            } else {
                ""
            }
        )
    }
}

impl ExecutionPlan for ImageFolderExec {
    fn name(&self) -> &str {
        "ImageFolderExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
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
        leaf_with_new_children(self, children)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let files = partition_group(&self.groups, partition, "ImageFolderExec")?;
        let store =
            super::object_stores::scan_object_store(&context.runtime_env(), &self.store_url)?;
        let schema = Arc::clone(&self.schema);
        let projection = self.projection.clone();
        let read_bytes = projection.contains(&2);
        let skip_unreadable = self.skip_unreadable;
        let unreadable = MetricBuilder::new(&self.metrics).counter("unreadable_files", partition);
        let chunks: Vec<Vec<ImageFile>> = files
            .chunks(self.batch_rows)
            .map(<[ImageFile]>::to_vec)
            .collect();
        let stream_schema = Arc::clone(&schema);
        let stream = futures::stream::iter(chunks).then(move |chunk| {
            let store = Arc::clone(&store);
            let schema = Arc::clone(&stream_schema);
            let projection = projection.clone();
            let unreadable = unreadable.clone();
            async move {
                let images = if read_bytes {
                    Some(read_all(store, chunk.clone(), skip_unreadable, unreadable).await?)
                } else {
                    None
                };
                build_batch(&schema, &projection, &chunk, images)
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        let files: Vec<&ImageFile> = match partition {
            Some(p) => self
                .groups
                .get(p)
                .map(|g| g.iter().collect())
                .unwrap_or_default(),
            None => self.groups.iter().flatten().collect(),
        };
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = Precision::Exact(files.len());
        // The image bytes dominate a row; their total is known from the listing.
        if self.projection.contains(&2) {
            stats.total_byte_size = Precision::Inexact(files.iter().map(|f| f.size as usize).sum());
        }
        Ok(Arc::new(stats))
    }
}

/// Read the files' bytes, a few at a time, in order. A file that cannot
/// be read fails the scan naming it, or with `skip_unreadable` is `None`,
/// logged and counted.
async fn read_all(
    store: Arc<dyn ObjectStore>,
    files: Vec<ImageFile>,
    skip_unreadable: bool,
    unreadable: Count,
) -> Result<Vec<Option<bytes::Bytes>>> {
    futures::stream::iter(files.into_iter().map(move |file| {
        let store = Arc::clone(&store);
        let unreadable = unreadable.clone();
        async move {
            let location = Path::from(file.location.as_str());
            let read = async { store.get(&location).await?.bytes().await }.await;
            match read {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if skip_unreadable => {
                    log::warn!("IMAGEFOLDER: skipping unreadable file {}: {e}", file.path);
                    unreadable.add(1);
                    Ok(None)
                }
                Err(e) => Err(DataFusionError::Execution(format!(
                    "cannot read image file {}: {e} (OPTIONS ('skip_unreadable' 'true') on the \
                     table gives such files a NULL image instead)",
                    file.path
                ))),
            }
        }
    }))
    .buffered(CONCURRENT_READS)
    .try_collect()
    .await
}

fn build_batch(
    schema: &SchemaRef,
    projection: &[usize],
    files: &[ImageFile],
    images: Option<Vec<Option<bytes::Bytes>>>,
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(projection.len());
    for &column in projection {
        columns.push(match column {
            0 => {
                let mut b = StringBuilder::new();
                files.iter().for_each(|f| b.append_value(&f.path));
                Arc::new(b.finish())
            }
            1 => {
                let mut b = StringBuilder::new();
                files
                    .iter()
                    .for_each(|f| b.append_option(f.label.as_deref()));
                Arc::new(b.finish())
            }
            2 => {
                let Some(images) = &images else {
                    return internal_err!("image bytes were not read");
                };
                let total: usize = images.iter().flatten().map(bytes::Bytes::len).sum();
                let mut b = BinaryBuilder::with_capacity(images.len(), total);
                images
                    .iter()
                    .for_each(|bytes| b.append_option(bytes.as_ref()));
                Arc::new(b.finish())
            }
            other => return internal_err!("IMAGEFOLDER has no column {other}"),
        });
    }
    // A projection of no columns (count(*)) still has rows.
    let options = RecordBatchOptions::new().with_row_count(Some(files.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(i: usize) -> ImageFile {
        ImageFile {
            location: format!("f{i}.png"),
            path: format!("/f{i}.png"),
            label: None,
            size: 1,
        }
    }

    #[test]
    fn groups_are_contiguous_and_balanced() {
        let groups = split_into_groups((0..10).map(file).collect(), 4);
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 3, 3, 1]);
        assert_eq!(groups[1][0].location, "f3.png");
        assert!(split_into_groups(Vec::new(), 4).is_empty());
        assert_eq!(split_into_groups((0..2).map(file).collect(), 8).len(), 2);
    }
}
