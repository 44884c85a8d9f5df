//! Extension codecs for plans that scan our image tables, so that such a
//! plan can be turned into bytes in one process and run in another — the
//! way a Ballista client ships plans to its scheduler and the scheduler to
//! its executors.
//!
//! - [`ClipLogicalCodec`]: the `IMAGEFOLDER`, `WEBDATASET` and `CIFAR`
//!   table providers of a logical plan, and in-memory tables (what
//!   `CREATE TABLE … AS SELECT` and `clip_models()` make).
//! - [`ClipPhysicalCodec`]: the scans of our tables (`ImageFolderExec`,
//!   `WebDatasetExec`, `CifarExec`) in a physical plan, with the exact
//!   partitioning the planner chose, and the nodes `crate::query_cancel`
//!   adds: a plan with its root arrives with them rebuilt (a token of its
//!   own on the receiving side); a piece of a plan without its root (a
//!   stage) arrives without them.
//!
//! Each wraps an inner codec that gets everything that is not ours:
//! DataFusion's default for plans run in one process, Ballista's own
//! (shuffles, caches, file formats) on a cluster. Our bytes start with
//! [`TAG`], which no protobuf message starts with, so decoding knows whose
//! bytes it holds.
//!
//! What travels for an image table or scan is its `*Parts`: locations, file
//! and shard lists, projection, options, as JSON. Images never travel; the
//! receiving side reads them from the same object store, which must be
//! reachable there. An in-memory table travels whole, as an Arrow IPC
//! stream per partition: a benchmark's `CREATE TABLE … AS` tables (image
//! embeddings, predictions) live where the SQL was submitted and go with
//! each query that reads them. The CLIP functions travel by name and come
//! from the receiving session's registry (`datafusion_clip::register`), so
//! a model is loaded where the plan runs.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::TableProvider;
use datafusion::common::{
    DataFusionError, Result, TableReference, internal_datafusion_err, not_impl_err,
};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::{DefaultLogicalExtensionCodec, LogicalExtensionCodec};
use datafusion_proto::physical_plan::{
    DefaultPhysicalExtensionCodec, PhysicalExtensionCodec, PhysicalProtoConverterExtension,
};
use serde::{Deserialize, Serialize};

use crate::formats::cifar::scan::{CifarExec, CifarScan};
use crate::formats::cifar::{CifarTable, CifarTableParts};
use crate::formats::image_scan::ScanParts;
use crate::formats::imagefolder::scan::{ImageFolderExec, ImageFolderScan};
use crate::formats::imagefolder::{ImageFolderTable, ImageFolderTableParts};
use crate::formats::webdataset::scan::{WebDatasetExec, WebDatasetScan};
use crate::formats::webdataset::{WebDatasetTable, WebDatasetTableParts};
use crate::query_cancel::{CancelDroppedQueries, ClipCancelOnDropExec, ClipQueryScopeExec};

/// A table provider of ours, as it travels.
#[derive(Debug, Serialize, Deserialize)]
enum EncodedTable {
    ImageFolder(ImageFolderTableParts),
    WebDataset(WebDatasetTableParts),
    Cifar(CifarTableParts),
}

/// A scan of ours, as it travels.
#[derive(Debug, Serialize, Deserialize)]
enum EncodedScan {
    ImageFolder(ScanParts<ImageFolderScan>),
    WebDataset(ScanParts<WebDatasetScan>),
    Cifar(ScanParts<CifarScan>),
}

fn to_json<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<()> {
    serde_json::to_writer(buf, value)
        .map_err(|e| internal_datafusion_err!("cannot encode an image table: {e}"))
}

fn from_json<'a, T: Deserialize<'a>>(buf: &'a [u8], what: &str) -> Result<T> {
    serde_json::from_slice(buf).map_err(|e| {
        internal_datafusion_err!(
            "cannot decode {what} (was it encoded by another datafusion-clip version?): {e}"
        )
    })
}

/// The first bytes of everything this module encodes. `d` (0x64) would be
/// an end-group marker as the first byte of a protobuf message, which no
/// encoder writes, so our bytes never look like an inner codec's.
const TAG: &[u8] = b"datafusion-clip/1 ";

/// What follows [`TAG`]: one of ours as JSON, or an in-memory table.
const KIND_JSON: u8 = b'J';
const KIND_MEMORY_TABLE: u8 = b'M';
/// `ClipCancelOnDropExec` and `ClipQueryScopeExec`: no payload.
const KIND_CANCEL_ON_DROP: u8 = b'C';
const KIND_QUERY_SCOPE: u8 = b'S';

fn start(buf: &mut Vec<u8>, kind: u8) {
    buf.extend_from_slice(TAG);
    buf.push(kind);
}

/// `(kind, payload)` when `buf` is ours.
fn ours(buf: &[u8]) -> Option<(u8, &[u8])> {
    let rest = buf.strip_prefix(TAG)?;
    let (&kind, payload) = rest.split_first()?;
    Some((kind, payload))
}

/// An in-memory table as bytes: the partition count, then each partition
/// as a length-prefixed Arrow IPC stream (so its batches, schema metadata
/// and partitioning all survive).
fn encode_memory_table(table: &MemTable, buf: &mut Vec<u8>) -> Result<()> {
    let schema = table.schema();
    buf.extend_from_slice(&(table.batches.len() as u32).to_le_bytes());
    for partition in &table.batches {
        // Encoding is synchronous; a table being written to right now
        // (INSERT INTO it in flight) is refused rather than waited for.
        let batches = partition.try_read().map_err(|_| {
            internal_datafusion_err!(
                "an in-memory table is being written to while its plan is encoded"
            )
        })?;
        let mut stream = Vec::new();
        {
            let mut writer = StreamWriter::try_new(&mut stream, &schema)?;
            for batch in batches.iter() {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        buf.extend_from_slice(&(stream.len() as u64).to_le_bytes());
        buf.extend_from_slice(&stream);
    }
    Ok(())
}

/// The next `n` bytes of `bytes`, or `None` when fewer are left.
fn split_off<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Some(head)
}

fn decode_memory_table(
    mut bytes: &[u8],
    schema: SchemaRef,
    table: &TableReference,
) -> Result<MemTable> {
    let truncated = || internal_datafusion_err!("in-memory table {table}: its bytes are truncated");
    let count = split_off(&mut bytes, 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(truncated)?;
    let mut partitions = Vec::new();
    for _ in 0..count {
        let len = split_off(&mut bytes, 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .and_then(|len| usize::try_from(len).ok())
            .ok_or_else(truncated)?;
        let stream = split_off(&mut bytes, len).ok_or_else(truncated)?;
        let reader = StreamReader::try_new(stream, None)?;
        partitions.push(reader.collect::<std::result::Result<Vec<RecordBatch>, _>>()?);
    }
    if !bytes.is_empty() {
        return Err(internal_datafusion_err!(
            "in-memory table {table}: {} bytes after its last partition",
            bytes.len()
        ));
    }
    // The plan's schema (field metadata, nullability) is the one the
    // receiving side plans with; the IPC stream's must agree with it.
    MemTable::try_new(schema, partitions)
}

/// Logical codec: our table providers and in-memory tables; an inner codec
/// (DataFusion's default, or Ballista's) for the rest.
#[derive(Debug, Clone)]
pub struct ClipLogicalCodec {
    inner: Arc<dyn LogicalExtensionCodec>,
}

impl Default for ClipLogicalCodec {
    fn default() -> Self {
        Self::wrapping(Arc::new(DefaultLogicalExtensionCodec {}))
    }
}

impl ClipLogicalCodec {
    /// Ours first, then `inner` for what is not ours.
    pub fn wrapping(inner: Arc<dyn LogicalExtensionCodec>) -> Self {
        Self { inner }
    }
}

impl LogicalExtensionCodec for ClipLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let payload = match ours(buf) {
            None => {
                return self
                    .inner
                    .try_decode_table_provider(buf, table_ref, schema, ctx);
            }
            Some((KIND_MEMORY_TABLE, payload)) => {
                return Ok(Arc::new(decode_memory_table(payload, schema, table_ref)?));
            }
            Some((KIND_JSON, payload)) => payload,
            Some((kind, _)) => {
                return Err(internal_datafusion_err!(
                    "table {table_ref}: unknown datafusion-clip encoding {kind:#04x}"
                ));
            }
        };
        let table: EncodedTable = from_json(payload, &format!("table {table_ref}"))?;
        Ok(match table {
            EncodedTable::ImageFolder(parts) => Arc::new(ImageFolderTable::from_parts(parts)?),
            EncodedTable::WebDataset(parts) => Arc::new(WebDatasetTable::from_parts(parts)?),
            EncodedTable::Cifar(parts) => Arc::new(CifarTable::from_parts(parts)?),
        })
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let any: &dyn Any = node.as_ref();
        let table = if let Some(t) = any.downcast_ref::<ImageFolderTable>() {
            EncodedTable::ImageFolder(t.to_parts())
        } else if let Some(t) = any.downcast_ref::<WebDatasetTable>() {
            EncodedTable::WebDataset(t.to_parts())
        } else if let Some(t) = any.downcast_ref::<CifarTable>() {
            EncodedTable::Cifar(t.to_parts())
        } else if let Some(t) = any.downcast_ref::<MemTable>() {
            start(buf, KIND_MEMORY_TABLE);
            return encode_memory_table(t, buf);
        } else {
            return self
                .inner
                .try_encode_table_provider(table_ref, node, buf)
                .map_err(|e| {
                    DataFusionError::NotImplemented(format!(
                        "table {table_ref} cannot be sent to another process ({}): files, \
                         image tables and in-memory tables travel; a table function such as \
                         generate_series(1, 50) can be written \
                         (SELECT unnest(range(1, 51)) AS value)",
                        e.message()
                    ))
                });
        };
        start(buf, KIND_JSON);
        to_json(&table, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }
}

/// Physical codec: our scans; an inner codec (DataFusion's default, or
/// Ballista's) for the rest.
#[derive(Debug, Clone)]
pub struct ClipPhysicalCodec {
    inner: Arc<dyn PhysicalExtensionCodec>,
}

impl Default for ClipPhysicalCodec {
    fn default() -> Self {
        Self::wrapping(Arc::new(DefaultPhysicalExtensionCodec {}))
    }
}

impl ClipPhysicalCodec {
    /// Ours first, then `inner` for what is not ours.
    pub fn wrapping(inner: Arc<dyn PhysicalExtensionCodec>) -> Self {
        Self { inner }
    }
}

impl PhysicalExtensionCodec for ClipPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let payload = match ours(buf) {
            None => return self.inner.try_decode(buf, inputs, ctx, proto_converter),
            Some((KIND_JSON, payload)) => payload,
            Some((KIND_QUERY_SCOPE | KIND_CANCEL_ON_DROP, _)) if inputs.len() != 1 => {
                return not_impl_err!("a query-cancel node has one input, got {}", inputs.len());
            }
            // Scopes are rebuilt with their root, which shares one token
            // between them; without the root there is nothing to share.
            Some((KIND_QUERY_SCOPE, _)) => return Ok(Arc::clone(&inputs[0])),
            Some((KIND_CANCEL_ON_DROP, _)) => {
                return CancelDroppedQueries::rewrite(Arc::clone(&inputs[0]));
            }
            Some((kind, _)) => {
                return Err(internal_datafusion_err!(
                    "unknown datafusion-clip plan encoding {kind:#04x}"
                ));
            }
        };
        if !inputs.is_empty() {
            return not_impl_err!("an image table scan has no inputs, got {}", inputs.len());
        }
        let scan: EncodedScan = from_json(payload, "an image table scan")?;
        Ok(match scan {
            EncodedScan::ImageFolder(parts) => Arc::new(ImageFolderExec::from_parts(parts)?),
            EncodedScan::WebDataset(parts) => Arc::new(WebDatasetExec::from_parts(parts)?),
            EncodedScan::Cifar(parts) => Arc::new(CifarExec::from_parts(parts)?),
        })
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let any: &dyn Any = node.as_ref();
        let scan = if let Some(e) = any.downcast_ref::<ImageFolderExec>() {
            EncodedScan::ImageFolder(e.to_parts())
        } else if let Some(e) = any.downcast_ref::<WebDatasetExec>() {
            EncodedScan::WebDataset(e.to_parts())
        } else if let Some(e) = any.downcast_ref::<CifarExec>() {
            EncodedScan::Cifar(e.to_parts())
        } else if any.is::<ClipQueryScopeExec>() {
            start(buf, KIND_QUERY_SCOPE);
            return Ok(());
        } else if any.is::<ClipCancelOnDropExec>() {
            start(buf, KIND_CANCEL_ON_DROP);
            return Ok(());
        } else {
            return self.inner.try_encode(node, buf, proto_converter);
        };
        start(buf, KIND_JSON);
        to_json(&scan, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[test]
    fn foreign_tables_and_bytes_are_errors() {
        use datafusion_proto::logical_plan::LogicalExtensionCodec;
        use datafusion_proto::physical_plan::PhysicalExtensionCodec;
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        // A table that is not ours is left to the inner codec (DataFusion's
        // default here), which does not encode an EmptyTable.
        let empty = datafusion::datasource::empty::EmptyTable::new(schema.clone());
        let mut buf = Vec::new();
        assert!(
            ClipLogicalCodec::default()
                .try_encode_table_provider(&"t".into(), Arc::new(empty), &mut buf)
                .is_err()
        );
        let elsewhere = SessionContext::new_with_config(crate::session::session_config());
        crate::session::register(&elsewhere).unwrap();
        let tagged = |payload: &[u8]| {
            let mut bytes = TAG.to_vec();
            bytes.extend_from_slice(payload);
            bytes
        };
        let err = ClipPhysicalCodec::default()
            .try_decode(
                &tagged(b"J{\"NotAScan\":{}}"),
                &[],
                &elsewhere.task_ctx(),
                &datafusion_proto::physical_plan::DefaultPhysicalProtoConverter {},
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot decode an image table scan"), "{err}");
        // A truncated in-memory table says so instead of panicking.
        let err = ClipLogicalCodec::default()
            .try_decode_table_provider(
                &tagged(b"M\x02\0\0\0\x10"),
                &"t".into(),
                schema,
                &elsewhere.task_ctx(),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
