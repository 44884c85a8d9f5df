//! What a scan of a WEBDATASET table reads: shards split into contiguous
//! groups, one per partition; each partition streams its shards member by member
//! ([`TarStream`]), groups members into samples by key and emits batches of
//! `batch_rows` samples. Memory is one batch and one member, whatever the
//! shard size.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    ArrayRef, Int32Builder, ListBuilder, RecordBatch, RecordBatchOptions, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{Result, internal_err};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::{Count, MetricBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::stream::BoxStream;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::samples::{
    CAPTIONS_COLUMN, extra_column_name, image_rank, is_fixed_extension, split_lines,
    split_member_name, webdataset_schema,
};
use super::tar_stream::{TarError, TarStream};
use crate::config::DEFAULT_MAX_IMAGE_BYTES;
use crate::formats::image_scan::{
    BATCH_IMAGE_BYTES, ImageScanExec, PartitionScan, ScanSource, binary_column,
    default_max_image_bytes, image_column, oversized_image, partition_group,
};
use crate::formats::object_stores::{store_error_text, stored_path};
use clip_model::image::IMAGE_EXTENSIONS;

/// One tar shard of the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Object-store path.
    pub location: String,
    /// How messages name it (the path or URL as written).
    pub name: String,
}

/// The physical scan of WebDataset shards.
pub type WebDatasetExec = ImageScanExec<WebDatasetScan>;

/// The shards of a WebDataset scan, by partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebDatasetScan {
    /// Shards per partition.
    pub groups: Vec<Vec<Shard>>,
    /// The extensions beyond `cls` and the image's, each a column.
    pub extras: BTreeSet<String>,
    pub batch_rows: usize,
    /// Rows each partition needs at most (a LIMIT pushed into the scan).
    pub limit: Option<usize>,
    /// A shard that cannot be read is skipped and counted instead of
    /// failing the scan.
    pub skip_unreadable: bool,
    /// Members larger than this (`clip.max_image_bytes`) are not read.
    #[serde(default = "default_max_image_bytes")]
    pub max_image_bytes: usize,
    /// A member larger than `max_image_bytes` fails the scan
    /// (`clip.on_error = 'error'`) instead of giving a NULL value counted in
    /// the `oversized_members` metric.
    #[serde(default)]
    pub oversized_is_error: bool,
    /// CLIP_benchmark's retrieval layout: `captions` from each `.txt`.
    #[serde(default)]
    pub captions: bool,
}

impl WebDatasetScan {
    /// `shards` in at most `target_partitions` contiguous groups.
    pub fn new(
        shards: &[Shard],
        extras: BTreeSet<String>,
        target_partitions: usize,
        batch_rows: usize,
    ) -> Self {
        let per_group = shards.len().div_ceil(target_partitions.max(1)).max(1);
        Self {
            groups: shards.chunks(per_group).map(<[Shard]>::to_vec).collect(),
            extras,
            batch_rows: batch_rows.max(1),
            limit: None,
            skip_unreadable: false,
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
            oversized_is_error: false,
            captions: false,
        }
    }
}

impl ScanSource for WebDatasetScan {
    const NAME: &'static str = "WebDatasetExec";

    fn table_schema(&self) -> SchemaRef {
        webdataset_schema(&self.extras, self.captions)
    }

    fn partition_count(&self) -> usize {
        self.groups.len()
    }

    fn describe(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "shards={}, partitions={}{}",
            self.groups.iter().map(Vec::len).sum::<usize>(),
            self.groups.len(),
            if self.skip_unreadable {
                ", skip_unreadable"
            } else {
                ""
            }
        )
    }

    fn open(&self, partition: usize, scan: PartitionScan<'_>) -> Result<SendableRecordBatchStream> {
        let shards = partition_group(&self.groups, partition);
        let table_schema = webdataset_schema(&self.extras, self.captions);
        let read_columns = scan
            .projection
            .iter()
            .map(|&i| table_schema.field(i).name().clone())
            .collect();
        let reader = SampleReader {
            store: scan.store,
            shards,
            next_shard: 0,
            current: None,
            pending: None,
            extras: self.extras.clone(),
            table_schema,
            projection: scan.projection.to_vec(),
            read_columns,
            schema: Arc::clone(&scan.schema),
            batch_rows: self.batch_rows,
            rows_left: self.limit.unwrap_or(usize::MAX),
            skip_unreadable: self.skip_unreadable,
            unreadable: MetricBuilder::new(scan.metrics).counter("unreadable_shards", partition),
            max_image_bytes: self.max_image_bytes,
            oversized_is_error: self.oversized_is_error,
            oversized: MetricBuilder::new(scan.metrics).counter("oversized_members", partition),
        };
        let stream = futures::stream::try_unfold(reader, |mut reader| async move {
            Ok(reader.next_batch().await?.map(|batch| (batch, reader)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(scan.schema, stream)))
    }
}

/// The members of one sample.
#[derive(Debug, Default)]
struct Sample {
    key: String,
    label: Option<i32>,
    image: Option<Bytes>,
    /// The [`image_rank`] of the member `image` holds, or of a preferred
    /// one too large to read (then the image is NULL, not a less preferred
    /// member).
    image_rank: Option<usize>,
    /// The extensions of its members so far: webdataset refuses a sample
    /// with two members of one extension.
    extensions: BTreeSet<String>,
    extras: BTreeMap<String, Bytes>,
}

impl Sample {
    /// Bytes its binary and text columns hold.
    fn bytes(&self) -> usize {
        self.image.as_ref().map_or(0, Bytes::len)
            + self.extras.values().map(Bytes::len).sum::<usize>()
    }
}

type ShardStream = TarStream<BoxStream<'static, object_store::Result<Bytes>>>;

/// A partition's position in its shards.
struct SampleReader {
    store: Arc<dyn ObjectStore>,
    shards: Vec<Shard>,
    next_shard: usize,
    /// The shard being read and its index.
    current: Option<(usize, ShardStream)>,
    /// The sample being assembled (its members so far).
    pending: Option<Sample>,
    extras: BTreeSet<String>,
    table_schema: SchemaRef,
    projection: Vec<usize>,
    /// Names of the projected columns: members of other columns are dropped.
    read_columns: BTreeSet<String>,
    schema: SchemaRef,
    batch_rows: usize,
    rows_left: usize,
    skip_unreadable: bool,
    unreadable: Count,
    max_image_bytes: usize,
    oversized_is_error: bool,
    oversized: Count,
}

impl SampleReader {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let mut samples = Vec::new();
        // A batch ends early once it holds BATCH_IMAGE_BYTES: with members
        // of at most clip.max_image_bytes (1 GiB) it stays under the 2 GiB
        // its columns' offsets can address.
        let mut bytes = 0usize;
        while samples.len() < self.batch_rows.min(self.rows_left) && bytes < BATCH_IMAGE_BYTES {
            match self.next_sample().await? {
                Some(sample) => {
                    bytes += sample.bytes();
                    samples.push(sample);
                }
                None => break,
            }
        }
        if samples.is_empty() {
            return Ok(None);
        }
        self.rows_left -= samples.len();
        self.build(&samples).map(Some)
    }

    /// The next complete sample across this partition's shards.
    async fn next_sample(&mut self) -> Result<Option<Sample>> {
        loop {
            if self.current.is_none() {
                let Some(shard) = self.shards.get(self.next_shard) else {
                    return Ok(self.pending.take());
                };
                let index = self.next_shard;
                self.next_shard += 1;
                match self.store.get(&stored_path(&shard.location)?).await {
                    Ok(result) => {
                        let tar = TarStream::new(result.into_stream())
                            .with_max_member_bytes(self.max_image_bytes);
                        self.current = Some((index, tar));
                    }
                    Err(e) => {
                        self.shard_failed(index, &e.to_string())?;
                        continue;
                    }
                }
            }
            let Some((index, tar)) = self.current.as_mut() else {
                continue;
            };
            let index = *index;
            match tar.next_member().await {
                Ok(Some(member)) => {
                    let Some((key, ext)) = split_member_name(&member.name) else {
                        continue;
                    };
                    let wanted = self.wanted(&ext);
                    let finished = match &self.pending {
                        Some(p) if p.key != key => self.pending.take(),
                        _ => None,
                    };
                    if let Some(sample) = &self.pending
                        && sample.extensions.contains(&ext)
                    {
                        let reason = format!(
                            "sample '{key}' has a second '.{ext}' member ({}), which webdataset \
                             refuses too",
                            member.name
                        );
                        // The shard is malformed from here: its rest and
                        // the sample are dropped, as for a broken shard.
                        self.current = None;
                        self.pending = None;
                        self.shard_failed(index, &reason)?;
                        continue;
                    }
                    let sample = self.pending.get_or_insert_with(|| Sample {
                        key: key.to_string(),
                        ..Sample::default()
                    });
                    sample.extensions.insert(ext.clone());
                    let shard = &self.shards[index].name;
                    match member.skipped_size {
                        Some(size) if wanted => {
                            oversized_image(
                                "WEBDATASET",
                                &format!("member {} of WebDataset shard {shard}", member.name),
                                size as u64,
                                self.max_image_bytes,
                                self.oversized_is_error,
                                &self.oversized,
                            )?;
                            if let Some(rank) = image_rank(&ext)
                                && sample.image_rank.is_none_or(|chosen| rank < chosen)
                            {
                                sample.image = None;
                                sample.image_rank = Some(rank);
                            }
                        }
                        None if wanted => add_member(sample, &ext, member.data, shard)?,
                        _ => {}
                    }
                    if finished.is_some() {
                        return Ok(finished);
                    }
                }
                Ok(None) => {
                    // A sample never spans shards.
                    self.current = None;
                    if let Some(sample) = self.pending.take() {
                        return Ok(Some(sample));
                    }
                }
                Err(e) => {
                    self.current = None;
                    // What was read of a broken shard's last sample is
                    // incomplete, unless the member that broke off is the
                    // next sample's: a sample's members are contiguous, so
                    // the one before it is whole (and webdataset keeps it).
                    let next_sample_broke = match (&e, &self.pending) {
                        (TarError::EndsInMember { name, .. }, Some(pending)) => {
                            split_member_name(name).is_some_and(|(key, _)| key != pending.key)
                        }
                        _ => false,
                    };
                    let whole = self.pending.take().filter(|_| next_sample_broke);
                    self.shard_failed(index, &e.to_string())?;
                    if whole.is_some() {
                        return Ok(whole);
                    }
                }
            }
        }
    }

    /// Whether a member's column is read by the query: the bytes of the
    /// others are dropped as they stream past.
    fn wanted(&self, ext: &str) -> bool {
        let column = if ext == "cls" {
            "label".to_string()
        } else if IMAGE_EXTENSIONS.contains(&ext) {
            "image".to_string()
        } else {
            extra_column_name(ext)
        };
        // The captions are the `.txt` member's lines.
        let for_captions = ext == "txt" && self.read_columns.contains(CAPTIONS_COLUMN);
        self.read_columns.contains(&column) || for_captions
    }

    /// A shard could not be read: an error naming it, or with
    /// `skip_unreadable` a warning and a count.
    fn shard_failed(&mut self, index: usize, reason: &str) -> Result<()> {
        let name = &self.shards[index].name;
        let reason = store_error_text(&reason);
        if self.skip_unreadable {
            log::warn!("WEBDATASET: skipping the rest of shard {name}: {reason}");
            self.unreadable.add(1);
            Ok(())
        } else {
            Err(DataFusionError::Execution(format!(
                "cannot read WebDataset shard {name}: {reason} (OPTIONS ('skip_unreadable' \
                 'true') on the table skips such shards and counts them)"
            )))
        }
    }

    fn build(&self, samples: &[Sample]) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.projection.len());
        for &column in &self.projection {
            let field = self.table_schema.field(column);
            columns.push(match field.name().as_str() {
                "key" => {
                    let mut b = StringBuilder::new();
                    samples.iter().for_each(|s| b.append_value(&s.key));
                    Arc::new(b.finish())
                }
                "label" => {
                    let mut b = Int32Builder::new();
                    samples.iter().for_each(|s| b.append_option(s.label));
                    Arc::new(b.finish())
                }
                "image" => {
                    let images: Vec<Option<Bytes>> =
                        samples.iter().map(|s| s.image.clone()).collect();
                    Arc::new(image_column(&images)?)
                }
                CAPTIONS_COLUMN => {
                    let mut b = ListBuilder::new(StringBuilder::new());
                    for s in samples {
                        match s.extras.get("txt") {
                            Some(text) => {
                                for line in split_lines(&String::from_utf8_lossy(text)) {
                                    b.values().append_value(line);
                                }
                                b.append(true);
                            }
                            None => b.append(false),
                        }
                    }
                    Arc::new(b.finish())
                }
                name => {
                    let Some(ext) = self.extras.iter().find(|e| extra_column_name(e) == name)
                    else {
                        return internal_err!("WEBDATASET has no column {name}");
                    };
                    if field.data_type() == &DataType::Utf8 {
                        let mut b = StringBuilder::new();
                        for s in samples {
                            b.append_option(s.extras.get(ext).map(|v| String::from_utf8_lossy(v)));
                        }
                        Arc::new(b.finish())
                    } else {
                        Arc::new(binary_column(
                            samples.iter().map(|s| s.extras.get(ext).map(|v| &v[..])),
                        )?)
                    }
                }
            });
        }
        let options = RecordBatchOptions::new().with_row_count(Some(samples.len()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }
}

/// Put a member into its sample's column.
fn add_member(sample: &mut Sample, ext: &str, data: Bytes, shard: &str) -> Result<()> {
    if ext == "cls" {
        let text = String::from_utf8_lossy(&data);
        let label = text.trim().parse::<i32>().map_err(|_| {
            DataFusionError::Execution(format!(
                "sample '{}' of shard {shard}: its .cls holds '{}', not an integer label",
                sample.key,
                text.trim().chars().take(40).collect::<String>()
            ))
        })?;
        sample.label = Some(label);
    } else if let Some(rank) = image_rank(ext) {
        // Of several image members, the one CLIP_benchmark would take.
        if sample.image_rank.is_none_or(|chosen| rank < chosen) {
            sample.image = Some(data);
            sample.image_rank = Some(rank);
        }
    } else if !is_fixed_extension(ext) {
        sample.extras.insert(ext.to_string(), data);
    }
    Ok(())
}
