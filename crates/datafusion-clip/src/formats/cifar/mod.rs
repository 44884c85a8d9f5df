//! `CREATE EXTERNAL TABLE t STORED AS CIFAR LOCATION '<dir or .bin file>'`:
//! the CIFAR-10 and CIFAR-100 binary batches as a table.
//!
//! The "binary version" of the datasets (`cifar-10-batches-bin/`:
//! `data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`;
//! `cifar-100-binary/`: `train.bin`, `test.bin`) is a sequence of fixed-size
//! records: a label byte (CIFAR-100: coarse label, then fine label) and
//! 32x32 pixels as three 1024-byte colour planes. The table has columns
//! `key` (`<file>/<record>`, which names a row in errors), `split`
//! (`train` or `test`, from the file name), `label` (CIFAR-100: the fine
//! label), `coarse_label` (CIFAR-100 only) and `image` (the record as PNG
//! bytes, lossless: the pixels torchvision's CIFAR loaders give).
//!
//! The record layout and the schema are `records.rs`; the table and its
//! factory are here, what the scan reads is `scan.rs`.

pub mod records;
pub mod scan;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::{Result, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{CreateExternalTable, Expr};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

pub use self::records::{CifarVariant, cifar_schema};
use self::scan::{CifarExec, CifarFile, CifarScan};
use super::image_scan::{one_location, projection_or_all, refuse_unused_clauses, scan_batch_rows};
use super::object_stores::{ensure_object_store, refuse_special_local_file, store_error_text};

/// Creates [`CifarTable`]s for `CREATE EXTERNAL TABLE ... STORED AS CIFAR`.
#[derive(Debug, Default)]
pub struct CifarFactory;

#[async_trait]
impl TableProviderFactory for CifarFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        refuse_unused_clauses("CIFAR", cmd)?;
        let mut variant = None;
        for (key, value) in &cmd.options {
            match key.strip_prefix("format.").unwrap_or(key) {
                "variant" => {
                    variant = Some(match value.trim() {
                        "10" | "cifar10" | "cifar-10" => CifarVariant::Cifar10,
                        "100" | "cifar100" | "cifar-100" => CifarVariant::Cifar100,
                        _ => {
                            return plan_err!(
                                "CIFAR option 'variant' must be '10' or '100', got '{value}'"
                            );
                        }
                    })
                }
                other => {
                    return plan_err!(
                        "unknown CIFAR option '{other}'; the one option is 'variant' ('10' or \
                         '100', found from the file names when left out)"
                    );
                }
            }
        }
        if !cmd.schema.fields().is_empty() {
            return plan_err!(
                "CIFAR tables have the columns (key, split, label, [coarse_label,] image); leave \
                 the column list out"
            );
        }
        let location = one_location(
            "CIFAR",
            cmd,
            "point it at a directory of .bin batches or one .bin file",
        )?;
        let root = ListingTableUrl::parse(location)?;
        ensure_object_store(state.runtime_env(), &root)?;
        refuse_special_local_file(&root)?;
        let files = list_batches(state, &root).await?;
        let variant = match variant {
            Some(v) => v,
            None => detect_variant(&files, location)?,
        };
        Ok(Arc::new(CifarTable {
            root,
            variant,
            schema: cifar_schema(variant),
        }))
    }
}

/// What a [`CifarTable`] is made of.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CifarTableParts {
    pub root: String,
    pub variant: CifarVariant,
}

/// A set of CIFAR binary batches.
#[derive(Debug, Clone)]
pub struct CifarTable {
    root: ListingTableUrl,
    variant: CifarVariant,
    schema: SchemaRef,
}

impl CifarTable {
    /// What the table is made of, to rebuild it in another process with
    /// [`Self::from_parts`] (`crate::codec`); its files are listed when it
    /// is scanned.
    pub fn to_parts(&self) -> CifarTableParts {
        CifarTableParts {
            root: self.root.as_str().to_string(),
            variant: self.variant,
        }
    }

    pub fn from_parts(parts: CifarTableParts) -> Result<Self> {
        Ok(Self {
            root: ListingTableUrl::parse(&parts.root)?,
            variant: parts.variant,
            schema: cifar_schema(parts.variant),
        })
    }
}

/// A `.bin` file of the location, with its size.
struct BatchFile {
    location: String,
    name: String,
    size: u64,
}

/// The `.bin` files at (or under) the location, sorted by path.
async fn list_batches(state: &dyn Session, root: &ListingTableUrl) -> Result<Vec<BatchFile>> {
    let store = state.runtime_env().object_store(root)?;
    let objects: Vec<object_store::ObjectMeta> = if root.is_collection() {
        store
            .list(Some(root.prefix()))
            .try_collect()
            .await
            .map_err(|e| {
                DataFusionError::Execution(format!(
                    "cannot list {}: {}",
                    root.as_str(),
                    store_error_text(&e)
                ))
            })?
    } else {
        // One file named as the location.
        vec![store.head(root.prefix()).await.map_err(|e| {
            DataFusionError::Execution(format!(
                "cannot read {}: {}",
                root.as_str(),
                store_error_text(&e)
            ))
        })?]
    };
    let mut files: Vec<BatchFile> = objects
        .into_iter()
        .filter_map(|meta| {
            let name = meta.location.filename()?.to_string();
            (name.ends_with(".bin") && !name.starts_with('.')).then(|| BatchFile {
                location: meta.location.to_string(),
                name,
                size: meta.size,
            })
        })
        .collect();
    files.sort_by(|a, b| a.location.cmp(&b.location));
    if files.is_empty() {
        return plan_err!(
            "no CIFAR batches (.bin files) at {}; point the location at the extracted \
             cifar-10-batches-bin/ or cifar-100-binary/ directory",
            root.as_str()
        );
    }
    Ok(files)
}

/// CIFAR-10 names its batches `data_batch_N.bin` and `test_batch.bin`,
/// CIFAR-100 `train.bin` and `test.bin`; otherwise the record size decides.
fn detect_variant(files: &[BatchFile], location: &str) -> Result<CifarVariant> {
    if files
        .iter()
        .any(|f| f.name == "test_batch.bin" || f.name.starts_with("data_batch_"))
    {
        return Ok(CifarVariant::Cifar10);
    }
    if files
        .iter()
        .any(|f| f.name == "train.bin" || f.name == "test.bin")
    {
        return Ok(CifarVariant::Cifar100);
    }
    let fits = |v: CifarVariant| {
        files
            .iter()
            .all(|f| f.size > 0 && f.size % v.record_size() as u64 == 0)
    };
    match (fits(CifarVariant::Cifar10), fits(CifarVariant::Cifar100)) {
        (true, false) => Ok(CifarVariant::Cifar10),
        (false, true) => Ok(CifarVariant::Cifar100),
        _ => plan_err!(
            "cannot tell whether {location} holds CIFAR-10 or CIFAR-100 batches; add \
             OPTIONS ('variant' '10') or OPTIONS ('variant' '100')"
        ),
    }
}

/// `test...` files are the test split, the rest training data.
fn split_of(name: &str) -> &'static str {
    if name.starts_with("test") {
        "test"
    } else {
        "train"
    }
}

#[async_trait]
impl TableProvider for CifarTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let record_size = self.variant.record_size() as u64;
        let mut files = Vec::new();
        for file in list_batches(state, &self.root).await? {
            if file.size == 0 {
                // Zero records is never a CIFAR batch: a failed download or
                // copy, which would otherwise read as 0 rows.
                return Err(DataFusionError::Execution(format!(
                    "{} is empty (0 bytes), not a {} batch (a failed download?)",
                    file.name,
                    self.variant.name()
                )));
            }
            if file.size % record_size != 0 {
                return Err(DataFusionError::Execution(format!(
                    "{} has {} bytes, not a whole number of {} records of {record_size} bytes \
                     (a truncated download?)",
                    file.name,
                    file.size,
                    self.variant.name()
                )));
            }
            files.push(CifarFile {
                location: file.location,
                split: split_of(&file.name).to_string(),
                records: (file.size / record_size) as usize,
                name: file.name,
            });
        }
        let source = CifarScan::new(
            self.variant,
            files,
            state.config_options().execution.target_partitions,
            scan_batch_rows(state),
            limit,
        );
        let projection = projection_or_all(projection, &self.schema);
        Ok(Arc::new(CifarExec::try_new(
            &self.root.object_store(),
            projection,
            source,
        )?))
    }
}
