//! The image table formats of `CREATE EXTERNAL TABLE ... STORED AS`, one
//! folder each: [`imagefolder`], [`webdataset`], [`cifar`] (the table and
//! its factory in `mod.rs`, what its scan reads in `scan.rs`). The scan's
//! physical plan is written once for all three ([`image_scan`]);
//! [`object_stores`] registers the store a location needs. The list of
//! formats is [`table_formats`]: everything that installs or recognises
//! a format reads it.

pub mod cifar;
pub mod image_scan;
pub mod imagefolder;
pub mod object_stores;
pub mod webdataset;

use std::sync::Arc;

use datafusion::catalog::TableProviderFactory;
use datafusion::prelude::SessionContext;

pub use object_stores::ensure_object_store;

/// A `STORED AS` format: its name, upper case as DataFusion looks it up,
/// and the factory that makes its tables.
#[derive(Debug, Clone)]
pub struct TableFormat {
    pub name: &'static str,
    pub factory: Arc<dyn TableProviderFactory>,
}

/// Every image table format: `IMAGEFOLDER`, `WEBDATASET` and `CIFAR`.
pub fn table_formats() -> Vec<TableFormat> {
    vec![
        TableFormat {
            name: "IMAGEFOLDER",
            factory: Arc::new(imagefolder::ImageFolderFactory),
        },
        TableFormat {
            name: "WEBDATASET",
            factory: Arc::new(webdataset::WebDatasetFactory),
        },
        TableFormat {
            name: "CIFAR",
            factory: Arc::new(cifar::CifarFactory),
        },
    ]
}

/// Whether `name` (as written after `STORED AS`, any case) is one of
/// [`table_formats`].
pub fn is_image_format(name: &str) -> bool {
    table_formats()
        .iter()
        .any(|format| format.name.eq_ignore_ascii_case(name))
}

/// Register every one of [`table_formats`] on `ctx`.
pub fn register_table_formats(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    for format in table_formats() {
        state
            .table_factories_mut()
            .insert(format.name.to_string(), format.factory);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_is_recognised_in_any_case() {
        for format in table_formats() {
            assert!(is_image_format(format.name));
            assert!(is_image_format(&format.name.to_ascii_lowercase()));
        }
        assert!(!is_image_format("PARQUET"));
    }
}
