//! What a scan of an IMAGEFOLDER table reads: files split into contiguous
//! groups, one per partition; each partition reads its files through the
//! object store a few at a time and emits batches of `batch_rows` rows,
//! with the columns of [`imagefolder_schema`].

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::stats::Precision;
use datafusion::common::{Result, Statistics, internal_err};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::{Count, MetricBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::config::DEFAULT_MAX_IMAGE_BYTES;
use crate::formats::image_scan::{
    BATCH_IMAGE_BYTES, ImageScanExec, PartitionScan, ScanSource, chunks_by_rows_and_bytes,
    default_max_image_bytes, exact_rows, image_column, oversized_image, partition_group,
};
use crate::formats::object_stores::{store_error_text, stored_path};

/// The table's schema: `path`, `label`, `image`.
pub fn imagefolder_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, true),
        // NULL only for a file that could not be read under `skip_unreadable`.
        Field::new("image", DataType::Binary, true),
    ]))
}

/// Files fetched at once per partition: enough to hide object-store
/// latency, few enough to keep memory to a handful of images.
const CONCURRENT_READS: usize = 8;

/// The physical scan of an image folder.
pub type ImageFolderExec = ImageScanExec<ImageFolderScan>;

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

/// The files of an image folder scan, by partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageFolderScan {
    /// Files per partition.
    pub groups: Vec<Vec<ImageFile>>,
    pub batch_rows: usize,
    /// An unreadable file gives a NULL image (counted in the
    /// `unreadable_files` metric) instead of failing the scan.
    pub skip_unreadable: bool,
    /// Files larger than this (`clip.max_image_bytes`) are not read.
    #[serde(default = "default_max_image_bytes")]
    pub max_image_bytes: usize,
    /// A file larger than `max_image_bytes` fails the scan
    /// (`clip.on_error = 'error'`) instead of giving a NULL image counted
    /// in the `oversized_files` metric.
    #[serde(default)]
    pub oversized_is_error: bool,
}

impl ImageFolderScan {
    /// `files` in at most `partitions` contiguous groups of nearly equal size.
    pub fn new(files: Vec<ImageFile>, partitions: usize, batch_rows: usize) -> Self {
        Self {
            groups: split_into_groups(files, partitions),
            batch_rows: batch_rows.max(1),
            skip_unreadable: false,
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
            oversized_is_error: false,
        }
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

impl ScanSource for ImageFolderScan {
    const NAME: &'static str = "ImageFolderExec";

    fn table_schema(&self) -> SchemaRef {
        imagefolder_schema()
    }

    fn partition_count(&self) -> usize {
        self.groups.len()
    }

    fn describe(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "files={}, partitions={}{}",
            self.file_count(),
            self.groups.len(),
            if self.skip_unreadable {
                ", skip_unreadable"
            } else {
                ""
            }
        )
    }

    fn open(&self, partition: usize, scan: PartitionScan<'_>) -> Result<SendableRecordBatchStream> {
        let files = partition_group(&self.groups, partition);
        let PartitionScan {
            store,
            projection,
            schema,
            metrics,
        } = scan;
        let projection = projection.to_vec();
        let read_bytes = projection.contains(&2);
        let reading = Reading {
            skip_unreadable: self.skip_unreadable,
            max_image_bytes: self.max_image_bytes,
            oversized_is_error: self.oversized_is_error,
            unreadable: MetricBuilder::new(metrics).counter("unreadable_files", partition),
            oversized: MetricBuilder::new(metrics).counter("oversized_files", partition),
        };
        // Batches end early rather than hold more than BATCH_IMAGE_BYTES of
        // images (files too large to read count for nothing).
        let chunks = chunks_by_rows_and_bytes(&files, self.batch_rows, BATCH_IMAGE_BYTES, |f| {
            let size = usize::try_from(f.size).unwrap_or(usize::MAX);
            if read_bytes && size <= self.max_image_bytes {
                size
            } else {
                0
            }
        });
        let stream_schema = Arc::clone(&schema);
        let stream = futures::stream::iter(chunks).then(move |chunk| {
            let store = Arc::clone(&store);
            let schema = Arc::clone(&stream_schema);
            let projection = projection.clone();
            let reading = reading.clone();
            async move {
                let images = if read_bytes {
                    Some(read_all(store, chunk.clone(), reading).await?)
                } else {
                    None
                };
                build_batch(&schema, &projection, &chunk, images)
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn statistics(&self, partition: Option<usize>, projection: &[usize], stats: &mut Statistics) {
        let files: Vec<&ImageFile> = match partition {
            Some(p) => self
                .groups
                .get(p)
                .map(|g| g.iter().collect())
                .unwrap_or_default(),
            None => self.groups.iter().flatten().collect(),
        };
        exact_rows(stats, files.len());
        // The image bytes dominate a row; their total is known from the listing.
        if projection.contains(&2) {
            stats.total_byte_size = Precision::Inexact(files.iter().map(|f| f.size as usize).sum());
        }
    }
}

/// How a partition reads its files' bytes.
#[derive(Clone)]
struct Reading {
    skip_unreadable: bool,
    max_image_bytes: usize,
    oversized_is_error: bool,
    unreadable: Count,
    oversized: Count,
}

impl Reading {
    /// A file larger than `clip.max_image_bytes`: an error naming it, or a
    /// NULL image, logged and counted.
    fn oversized(&self, file: &ImageFile, size: u64) -> Result<Option<bytes::Bytes>> {
        oversized_image(
            "IMAGEFOLDER",
            &format!("image file {}", file.path),
            size,
            self.max_image_bytes,
            self.oversized_is_error,
            &self.oversized,
        )?;
        Ok(None)
    }
}

/// Read the files' bytes, a few at a time, in order. A file that cannot
/// be read fails the scan naming it, or with `skip_unreadable` is `None`,
/// logged and counted; a file larger than `clip.max_image_bytes` is never
/// read (see [`Reading::oversized`]).
async fn read_all(
    store: Arc<dyn ObjectStore>,
    files: Vec<ImageFile>,
    reading: Reading,
) -> Result<Vec<Option<bytes::Bytes>>> {
    futures::stream::iter(files.into_iter().map(move |file| {
        let store = Arc::clone(&store);
        let reading = reading.clone();
        async move {
            if file.size > reading.max_image_bytes as u64 {
                return reading.oversized(&file, file.size);
            }
            let location = stored_path(&file.location)?;
            let read = async { store.get(&location).await?.bytes().await }.await;
            match read {
                // The file grew after it was listed.
                Ok(bytes) if bytes.len() > reading.max_image_bytes => {
                    reading.oversized(&file, bytes.len() as u64)
                }
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if reading.skip_unreadable => {
                    log::warn!(
                        "IMAGEFOLDER: skipping unreadable file {}: {}",
                        file.path,
                        store_error_text(&e)
                    );
                    reading.unreadable.add(1);
                    Ok(None)
                }
                Err(e) => Err(DataFusionError::Execution(format!(
                    "cannot read image file {}: {} (OPTIONS ('skip_unreadable' 'true') on the \
                     table gives such files a NULL image instead)",
                    file.path,
                    store_error_text(&e)
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
                Arc::new(image_column(images)?)
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
