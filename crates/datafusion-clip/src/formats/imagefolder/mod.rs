//! `STORED AS IMAGEFOLDER`: a directory tree of images as a table
//! `(path, label, image)`, as torchvision's `ImageFolder` sees
//! `root/<class>/<file>`.
//!
//! Every file with an image extension under the location is a row, however
//! deep; `label` is the name of the file's parent directory (NULL for files
//! directly under the root); other files (and hidden files such as macOS's
//! `._x.jpg`) are skipped. The location is a local directory or any
//! object-store URL (`file://`, `https://`, `s3://`, `gs://`, `az://`).
//!
//! The table lists its files when a query is planned and hands them to its
//! scan ([`scan::ImageFolderExec`]), which splits them across partitions and
//! reads only the columns a query uses. Both are plain data (file list,
//! settings), so a plan can be serialised to Ballista executors.

pub mod scan;

use std::sync::Arc;

use async_trait::async_trait;
use clip_model::image::IMAGE_EXTENSIONS;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::{Result, plan_err};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{CreateExternalTable, Expr};
use datafusion::physical_plan::ExecutionPlan;
use futures::TryStreamExt;

use crate::config::{ClipOptions, OnErrorSetting};

use self::scan::{ImageFile, ImageFolderExec, ImageFolderScan, imagefolder_schema};
use super::image_scan::{
    one_location, projection_or_all, refuse_unused_clauses, scan_batch_rows, skip_unreadable_option,
};
use super::object_stores::{ensure_object_store, store_error_text};

/// Creates [`ImageFolderTable`]s for `CREATE EXTERNAL TABLE ... STORED AS IMAGEFOLDER`.
#[derive(Debug, Default)]
pub struct ImageFolderFactory;

#[async_trait]
impl TableProviderFactory for ImageFolderFactory {
    async fn create(
        &self,
        state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> Result<Arc<dyn TableProvider>> {
        refuse_unused_clauses("IMAGEFOLDER", cmd)?;
        let skip_unreadable = skip_unreadable_option(
            "IMAGEFOLDER",
            cmd,
            "a file that cannot be read gives a row with a NULL image",
        )?;
        if !cmd.schema.fields().is_empty() {
            let given: Vec<&str> = cmd
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            if given != ["path", "label", "image"] {
                return plan_err!(
                    "IMAGEFOLDER tables have the columns (path, label, image); leave the column list out \
                     or write exactly those, got ({})",
                    given.join(", ")
                );
            }
        }
        let location = one_location(
            "IMAGEFOLDER",
            cmd,
            "make one table per folder and UNION ALL them",
        )?;
        let table = ImageFolderTable::try_new(location)?.with_skip_unreadable(skip_unreadable);
        // A typo in a local path would otherwise be an empty table.
        let url: &url::Url = table.root.as_ref();
        if url.scheme() == "file"
            && let Ok(dir) = url.to_file_path()
            && !dir.is_dir()
        {
            return plan_err!("IMAGEFOLDER location {} is not a directory", dir.display());
        }
        ensure_object_store(state.runtime_env(), &table.root)?;
        Ok(Arc::new(table))
    }
}

/// What an [`ImageFolderTable`] is made of (its files are listed when it
/// is scanned).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageFolderTableParts {
    pub root: String,
    pub skip_unreadable: bool,
}

/// A directory tree of images.
#[derive(Debug, Clone)]
pub struct ImageFolderTable {
    root: ListingTableUrl,
    schema: SchemaRef,
    /// A file that cannot be read gives a row with a NULL image (counted
    /// in the scan's `unreadable_files` metric) instead of failing the query.
    skip_unreadable: bool,
}

impl ImageFolderTable {
    /// A table over `location` (a directory path or URL).
    pub fn try_new(location: &str) -> Result<Self> {
        // A directory, whether or not the user wrote the trailing slash.
        let location = if location.ends_with('/') {
            location.to_string()
        } else {
            format!("{location}/")
        };
        Ok(Self {
            root: ListingTableUrl::parse(&location)?,
            schema: imagefolder_schema(),
            skip_unreadable: false,
        })
    }

    /// Whether an unreadable file gives a NULL image rather than an error.
    pub fn with_skip_unreadable(self, skip_unreadable: bool) -> Self {
        Self {
            skip_unreadable,
            ..self
        }
    }

    /// What the table is made of, to rebuild it in another process with
    /// [`Self::from_parts`] (`crate::codec`).
    pub fn to_parts(&self) -> ImageFolderTableParts {
        ImageFolderTableParts {
            root: self.root.as_str().to_string(),
            skip_unreadable: self.skip_unreadable,
        }
    }

    pub fn from_parts(parts: ImageFolderTableParts) -> Result<Self> {
        Ok(Self::try_new(&parts.root)?.with_skip_unreadable(parts.skip_unreadable))
    }

    /// List the image files under the root, sorted by path.
    pub async fn list_files(&self, state: &dyn Session) -> Result<Vec<ImageFile>> {
        ensure_object_store(state.runtime_env(), &self.root)?;
        let store = state.runtime_env().object_store(&self.root)?;
        let prefix = self.root.prefix();
        let depth = prefix.parts().count();
        let url: &url::Url = self.root.as_ref();
        let location_text = self.root.as_str().to_string();
        let objects: Vec<(object_store::path::Path, u64)> = if url.scheme() == "file"
            && let Ok(dir) = url.to_file_path()
        {
            let skip_unreadable = self.skip_unreadable;
            tokio::task::spawn_blocking(move || walk_local_directory(&dir, skip_unreadable))
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))??
        } else {
            store
                .list(Some(prefix))
                .map_ok(|meta| (meta.location, meta.size))
                .try_collect()
                .await
                .map_err(|e| {
                    let hint = if matches!(url.scheme(), "http" | "https") {
                        "; an http(s) server is listed through WebDAV, which few speak: put \
                         the images in WEBDATASET shards (read without listing), or copy them \
                         to a local disk or an object store"
                    } else {
                        ""
                    };
                    DataFusionError::Execution(format!(
                        "cannot list image folder {location_text}: {}{hint}",
                        store_error_text(&e)
                    ))
                })?
        };
        let mut files: Vec<ImageFile> = objects
            .into_iter()
            .filter_map(|(location, size)| {
                let parts: Vec<String> = location.parts().map(|p| p.as_ref().to_string()).collect();
                let name = parts.last()?;
                // Hidden files and directories (".git", macOS "._x.jpg") are not data.
                if parts[depth..].iter().any(|p| p.starts_with('.')) {
                    return None;
                }
                let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
                if !IMAGE_EXTENSIONS.contains(&extension.as_str()) {
                    return None;
                }
                let label = (parts.len() >= depth + 2).then(|| parts[parts.len() - 2].clone());
                let path = if url.scheme() == "file" {
                    format!("/{location}")
                } else {
                    format!("{}://{}/{location}", url.scheme(), url.authority())
                };
                Some(ImageFile {
                    location: location.to_string(),
                    path,
                    label,
                    size,
                })
            })
            .collect();
        files.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(files)
    }
}

/// The files under a local directory (following symbolic links, as the
/// local object store does), with their object-store paths and sizes.
///
/// Walked here rather than by the object store's listing, which ends at the
/// first entry it cannot read (a symbolic-link loop, a directory it may not
/// open, a name that is not UTF-8) and so lost the whole folder to one bad
/// entry: such an entry fails the listing naming it, or with
/// `skip_unreadable` is logged and skipped. Broken links are skipped, as
/// the object store skips them.
fn walk_local_directory(
    root: &std::path::Path,
    skip_unreadable: bool,
) -> Result<Vec<(object_store::path::Path, u64)>> {
    let unreadable = |path: &std::path::Path, why: String| -> Result<()> {
        if skip_unreadable {
            log::warn!("IMAGEFOLDER: skipping {}: {why}", path.display());
            Ok(())
        } else {
            plan_err!(
                "cannot list {}: {why} (OPTIONS ('skip_unreadable' 'true') on the table skips \
                 such entries)",
                path.display()
            )
        }
    };
    let mut files = Vec::new();
    // Each directory to read, with the real paths of the directories above
    // it: a link back to one of those is a loop (a link elsewhere is read
    // again, as the object store would).
    let mut pending: Vec<(std::path::PathBuf, Arc<Vec<std::path::PathBuf>>)> =
        vec![(root.to_path_buf(), Arc::new(Vec::new()))];
    while let Some((dir, above)) = pending.pop() {
        let real = match std::fs::canonicalize(&dir) {
            Ok(real) => real,
            Err(e) => {
                unreadable(&dir, e.to_string())?;
                continue;
            }
        };
        if above.contains(&real) {
            unreadable(
                &dir,
                format!("a symbolic-link loop back to {}", real.display()),
            )?;
            continue;
        }
        let mut below = above.as_ref().clone();
        below.push(real);
        let below = Arc::new(below);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                unreadable(&dir, e.to_string())?;
                continue;
            }
        };
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(e) => {
                    unreadable(&dir, e.to_string())?;
                    continue;
                }
            };
            let Ok(meta) = std::fs::metadata(&path) else {
                // A broken link.
                continue;
            };
            if meta.is_dir() {
                pending.push((path, Arc::clone(&below)));
            } else if meta.is_file() {
                match object_store::path::Path::from_absolute_path(&path) {
                    Ok(location) => files.push((location, meta.len())),
                    Err(e) => unreadable(&path, e.to_string())?,
                }
            }
        }
    }
    Ok(files)
}

#[async_trait]
impl TableProvider for ImageFolderTable {
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
        let mut files = self.list_files(state).await?;
        if let Some(limit) = limit {
            files.truncate(limit);
        }
        let partitions = state.config_options().execution.target_partitions;
        let options = ClipOptions::from_config(state.config_options());
        let source = ImageFolderScan {
            skip_unreadable: self.skip_unreadable,
            max_image_bytes: options.max_image_bytes,
            oversized_is_error: options.on_error == OnErrorSetting::Error,
            ..ImageFolderScan::new(files, partitions, scan_batch_rows(state))
        };
        let projection = projection_or_all(projection, &self.schema);
        Ok(Arc::new(ImageFolderExec::try_new(
            &self.root.object_store(),
            projection,
            source,
        )?))
    }
}
