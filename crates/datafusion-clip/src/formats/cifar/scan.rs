//! What a scan of a CIFAR table reads: the records of all files in order,
//! cut into contiguous ranges, one per partition; each partition reads its range a
//! batch at a time with ranged object-store reads (a 30 MB batch file is
//! never held whole) and encodes each record's pixels as PNG.

use std::fmt;
use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, RecordBatch, RecordBatchOptions, StringBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Result, Statistics, internal_err};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use image::ImageEncoder;
use image::codecs::png::PngEncoder;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::records::{CIFAR100_COARSE_CLASSES, CifarVariant, cifar_schema};
use crate::formats::image_scan::{
    ImageScanExec, PartitionScan, ScanSource, exact_rows, partition_group,
};
use crate::formats::object_stores::{store_error_text, stored_path};

/// One batch file of a CIFAR table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CifarFile {
    /// Object-store path.
    pub location: String,
    /// File name, the first part of each row's key.
    pub name: String,
    /// `train` or `test`.
    pub split: String,
    pub records: usize,
}

/// Records `first .. first + count` of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRange {
    file: usize,
    first: usize,
    count: usize,
}

/// The physical scan of CIFAR binary batches.
pub type CifarExec = ImageScanExec<CifarScan>;

/// The record ranges of a CIFAR scan, by partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CifarScan {
    pub variant: CifarVariant,
    pub files: Vec<CifarFile>,
    /// Per partition: the ranges it reads, each at most `batch_rows` records.
    pub partitions: Vec<Vec<RecordRange>>,
}

impl CifarScan {
    /// The records of `files` (at most `limit`) in `target_partitions`
    /// shares, read `batch_rows` at a time.
    pub fn new(
        variant: CifarVariant,
        files: Vec<CifarFile>,
        target_partitions: usize,
        batch_rows: usize,
        limit: Option<usize>,
    ) -> Self {
        let partitions = plan_ranges(&files, target_partitions, batch_rows.max(1), limit);
        Self {
            variant,
            files,
            partitions,
        }
    }

    fn record_count(&self) -> usize {
        self.partitions.iter().flatten().map(|r| r.count).sum()
    }
}

/// Cut the records of `files` (at most `limit` of them) into `partitions`
/// contiguous shares of nearly equal size, each in ranges of at most
/// `batch_rows` records that do not cross a file boundary.
fn plan_ranges(
    files: &[CifarFile],
    partitions: usize,
    batch_rows: usize,
    limit: Option<usize>,
) -> Vec<Vec<RecordRange>> {
    let total: usize = files.iter().map(|f| f.records).sum();
    let total = limit.map_or(total, |l| l.min(total));
    if total == 0 {
        return Vec::new();
    }
    let per_partition = total.div_ceil(partitions.max(1));
    let mut out: Vec<Vec<RecordRange>> = Vec::new();
    let mut taken = 0;
    for (file, f) in files.iter().enumerate() {
        let mut first = 0;
        while first < f.records && taken < total {
            // Room left in the current partition, and in this batch.
            let partition_left = per_partition - taken % per_partition;
            let count = (f.records - first)
                .min(batch_rows)
                .min(partition_left)
                .min(total - taken);
            if taken % per_partition == 0 {
                out.push(Vec::new());
            }
            if let Some(current) = out.last_mut() {
                current.push(RecordRange { file, first, count });
            }
            first += count;
            taken += count;
        }
    }
    out
}

impl ScanSource for CifarScan {
    const NAME: &'static str = "CifarExec";

    fn table_schema(&self) -> SchemaRef {
        cifar_schema(self.variant)
    }

    fn partition_count(&self) -> usize {
        self.partitions.len()
    }

    /// Ranges must name files of the scan.
    fn check(&self) -> Result<()> {
        match self
            .partitions
            .iter()
            .flatten()
            .find(|r| r.file >= self.files.len())
        {
            Some(range) => internal_err!(
                "CifarExec: a record range names file {} of {}",
                range.file,
                self.files.len()
            ),
            None => Ok(()),
        }
    }

    fn describe(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "files={}, records={}, partitions={}",
            self.files.len(),
            self.record_count(),
            self.partitions.len()
        )
    }

    fn open(&self, partition: usize, scan: PartitionScan<'_>) -> Result<SendableRecordBatchStream> {
        let ranges = partition_group(&self.partitions, partition);
        let reader = Arc::new(BatchReader {
            store: scan.store,
            variant: self.variant,
            files: self.files.clone(),
            projection: scan.projection.to_vec(),
            schema: Arc::clone(&scan.schema),
        });
        let stream = futures::stream::iter(ranges).then(move |range| {
            let reader = Arc::clone(&reader);
            async move { reader.read(&range).await }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(scan.schema, stream)))
    }

    fn statistics(&self, partition: Option<usize>, _projection: &[usize], stats: &mut Statistics) {
        let rows: usize = match partition {
            Some(p) => self
                .partitions
                .get(p)
                .map(|r| r.iter().map(|r| r.count).sum())
                .unwrap_or(0),
            None => self.record_count(),
        };
        exact_rows(stats, rows);
    }
}

/// What a partition's stream needs to turn ranges into record batches.
struct BatchReader {
    store: Arc<dyn ObjectStore>,
    variant: CifarVariant,
    files: Vec<CifarFile>,
    projection: Vec<usize>,
    schema: SchemaRef,
}

impl BatchReader {
    async fn read(&self, range: &RecordRange) -> Result<RecordBatch> {
        let Some(file) = self.files.get(range.file) else {
            return internal_err!("CifarExec has no file {}", range.file);
        };
        let size = self.variant.record_size();
        let bytes = self
            .store
            .get_range(
                &stored_path(&file.location)?,
                (range.first * size) as u64..((range.first + range.count) * size) as u64,
            )
            .await
            .map_err(|e| {
                DataFusionError::Execution(format!(
                    "cannot read records {}..{} of {}: {}",
                    range.first,
                    range.first + range.count,
                    file.name,
                    store_error_text(&e)
                ))
            })?;
        if bytes.len() != range.count * size {
            return Err(DataFusionError::Execution(format!(
                "{} ended early: records {}..{} need {} bytes, got {}",
                file.name,
                range.first,
                range.first + range.count,
                range.count * size,
                bytes.len()
            )));
        }
        self.build(file, range.first, &bytes)
    }

    fn build(&self, file: &CifarFile, first: usize, bytes: &[u8]) -> Result<RecordBatch> {
        let size = self.variant.record_size();
        let records: Vec<&[u8]> = bytes.chunks_exact(size).collect();
        let key_of = |i: usize| format!("{}/{:05}", file.name, first + i);
        // (fine label, coarse label) per record, checked against the class counts.
        let mut labels = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            let (coarse, fine) = match self.variant {
                CifarVariant::Cifar10 => (None, record[0]),
                CifarVariant::Cifar100 => (Some(record[0]), record[1]),
            };
            if fine >= self.variant.classes()
                || coarse.is_some_and(|c| c >= CIFAR100_COARSE_CLASSES)
            {
                return Err(DataFusionError::Execution(format!(
                    "record {} has label bytes {:?}, outside the dataset's classes (not a CIFAR \
                     batch, or a corrupt one)",
                    key_of(i),
                    &record[..self.variant.label_bytes()]
                )));
            }
            labels.push((i32::from(fine), coarse.map(i32::from)));
        }
        let names = cifar_schema(self.variant);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.projection.len());
        for &column in &self.projection {
            let name = names.field(column).name().as_str();
            columns.push(match name {
                "key" => {
                    let mut b = StringBuilder::new();
                    (0..records.len()).for_each(|i| b.append_value(key_of(i)));
                    Arc::new(b.finish())
                }
                "split" => {
                    let mut b = StringBuilder::new();
                    (0..records.len()).for_each(|_| b.append_value(&file.split));
                    Arc::new(b.finish())
                }
                "label" => {
                    let mut b = Int32Builder::new();
                    labels.iter().for_each(|(fine, _)| b.append_value(*fine));
                    Arc::new(b.finish())
                }
                "coarse_label" => {
                    let mut b = Int32Builder::new();
                    labels
                        .iter()
                        .for_each(|(_, coarse)| b.append_value(coarse.unwrap_or_default()));
                    Arc::new(b.finish())
                }
                "image" => {
                    let mut b = BinaryBuilder::new();
                    for record in &records {
                        b.append_value(png_of(&record[self.variant.label_bytes()..])?);
                    }
                    Arc::new(b.finish())
                }
                other => return internal_err!("CIFAR has no column {other}"),
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(records.len()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }
}

/// A record's three 32x32 colour planes as an RGB PNG.
fn png_of(planes: &[u8]) -> Result<Vec<u8>> {
    const SIDE: usize = 32;
    const PLANE: usize = SIDE * SIDE;
    let mut rgb = vec![0u8; 3 * PLANE];
    for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
        px[0] = planes[i];
        px[1] = planes[PLANE + i];
        px[2] = planes[2 * PLANE + i];
    }
    let mut out = Cursor::new(Vec::with_capacity(3 * PLANE));
    PngEncoder::new(&mut out)
        .write_image(
            &rgb,
            SIDE as u32,
            SIDE as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| DataFusionError::Execution(format!("cannot encode a CIFAR image: {e}")))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(records: usize) -> CifarFile {
        CifarFile {
            location: String::new(),
            name: String::new(),
            split: "train".into(),
            records,
        }
    }

    #[test]
    fn ranges_cover_every_record_once_within_files_batches_and_partitions() {
        let files = [file(7), file(3), file(5)];
        let parts = plan_ranges(&files, 2, 4, None);
        assert_eq!(parts.len(), 2);
        let sizes: Vec<usize> = parts
            .iter()
            .map(|p| p.iter().map(|r| r.count).sum())
            .collect();
        assert_eq!(sizes, [8, 7]);
        let mut seen = vec![Vec::new(); 3];
        for r in parts.iter().flatten() {
            assert!(r.count <= 4 && r.first + r.count <= files[r.file].records);
            seen[r.file].extend(r.first..r.first + r.count);
        }
        for (f, s) in seen.iter().enumerate() {
            assert_eq!(*s, (0..files[f].records).collect::<Vec<_>>());
        }
        let limited = plan_ranges(&files, 4, 4, Some(6));
        assert_eq!(limited.iter().flatten().map(|r| r.count).sum::<usize>(), 6);
        assert!(plan_ranges(&[], 2, 4, None).is_empty());
    }

    #[test]
    fn png_holds_the_planes_pixels() {
        let planes: Vec<u8> = (0..3 * 1024).map(|i| (i % 251) as u8).collect();
        let png = png_of(&planes).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (32, 32));
        let px = img.get_pixel(5, 2).0;
        let i = 2 * 32 + 5;
        assert_eq!(px, [planes[i], planes[1024 + i], planes[2048 + i]]);
    }
}
