//! Extension codecs for plans that scan our image tables, so that such a
//! plan can be turned into bytes in one process and run in another — the
//! way a Ballista scheduler ships plans to its executors.
//!
//! - [`ClipLogicalCodec`]: the `IMAGEFOLDER`, `WEBDATASET` and `CIFAR`
//!   table providers of a logical plan (everything else is DataFusion's
//!   default encoding, so CSV and Parquet tables travel too).
//! - [`ClipPhysicalCodec`]: their scans (`ImageFolderExec`,
//!   `WebDatasetExec`, `CifarExec`) in a physical plan, with the exact
//!   partitioning the planner chose.
//!
//! What travels is each table's or scan's `*Parts`: locations, file and
//! shard lists, projection, options, as JSON. Images never travel; the
//! receiving side reads them from the same object store, which must be
//! reachable there. The CLIP functions travel by name and come from the
//! receiving session's registry (`datafusion_clip::register`), so a model
//! is loaded where the plan runs.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{Result, TableReference, internal_datafusion_err, not_impl_err};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::{DefaultLogicalExtensionCodec, LogicalExtensionCodec};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use serde::{Deserialize, Serialize};

use super::cifar::{CifarTable, CifarTableParts};
use super::cifar_exec::{CifarExec, CifarScanParts};
use super::imagefolder::{ImageFolderTable, ImageFolderTableParts};
use super::imagefolder_exec::{ImageFolderExec, ImageFolderScanParts};
use super::webdataset::{WebDatasetTable, WebDatasetTableParts};
use super::webdataset_exec::{WebDatasetExec, WebDatasetScanParts};

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
    ImageFolder(ImageFolderScanParts),
    WebDataset(WebDatasetScanParts),
    Cifar(CifarScanParts),
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

/// Logical codec: our table providers, and DataFusion's default for the
/// rest.
#[derive(Debug, Clone)]
pub struct ClipLogicalCodec {
    default: DefaultLogicalExtensionCodec,
}

impl Default for ClipLogicalCodec {
    fn default() -> Self {
        Self {
            default: DefaultLogicalExtensionCodec {},
        }
    }
}

impl LogicalExtensionCodec for ClipLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.default.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.default.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        _schema: SchemaRef,
        _ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let table: EncodedTable = from_json(buf, &format!("table {table_ref}"))?;
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
        } else {
            return self.default.try_encode_table_provider(table_ref, node, buf);
        };
        to_json(&table, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.default.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.default.try_encode_file_format(buf, node)
    }
}

/// Physical codec: our scans.
#[derive(Debug, Default, Clone)]
pub struct ClipPhysicalCodec;

impl PhysicalExtensionCodec for ClipPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !inputs.is_empty() {
            return not_impl_err!("an image table scan has no inputs, got {}", inputs.len());
        }
        let scan: EncodedScan = from_json(buf, "an image table scan")?;
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
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let any: &dyn Any = node.as_ref();
        let scan = if let Some(e) = any.downcast_ref::<ImageFolderExec>() {
            EncodedScan::ImageFolder(e.to_parts())
        } else if let Some(e) = any.downcast_ref::<WebDatasetExec>() {
            EncodedScan::WebDataset(e.to_parts())
        } else if let Some(e) = any.downcast_ref::<CifarExec>() {
            EncodedScan::Cifar(e.to_parts())
        } else {
            return not_impl_err!(
                "datafusion-clip's codec encodes image table scans, not {}",
                node.name()
            );
        };
        to_json(&scan, buf)
    }
}
