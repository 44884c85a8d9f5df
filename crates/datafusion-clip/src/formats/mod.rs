//! The image table formats of `CREATE EXTERNAL TABLE ... STORED AS`, one
//! folder each: [`imagefolder`], [`webdataset`], [`cifar`] (the table and
//! its factory in `mod.rs`, what its scan reads in `scan.rs`). The scan's
//! physical plan is written once for all three ([`image_scan`]), and
//! [`codec`] lets plans that scan them travel to Ballista executors.
//! [`object_stores`] registers the store a location needs.

pub mod cifar;
pub mod codec;
pub mod image_scan;
pub mod imagefolder;
pub mod object_stores;
pub mod webdataset;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

pub use cifar::scan::CifarExec;
pub use cifar::{CifarFactory, CifarTable, CifarVariant};
pub use image_scan::ImageScanExec;
pub use imagefolder::scan::ImageFolderExec;
pub use imagefolder::{ImageFolderFactory, ImageFolderTable};
pub use webdataset::scan::WebDatasetExec;
pub use webdataset::{WebDatasetFactory, WebDatasetTable};

/// The names of the `STORED AS` formats [`register_table_formats`] adds.
pub const TABLE_FORMATS: [&str; 3] = ["IMAGEFOLDER", "WEBDATASET", "CIFAR"];

/// Register the `STORED AS` formats (`IMAGEFOLDER`, `WEBDATASET`, `CIFAR`) on `ctx`.
pub fn register_table_formats(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    state
        .table_factories_mut()
        .insert("IMAGEFOLDER".to_string(), Arc::new(ImageFolderFactory));
    state
        .table_factories_mut()
        .insert("CIFAR".to_string(), Arc::new(CifarFactory));
    state
        .table_factories_mut()
        .insert("WEBDATASET".to_string(), Arc::new(WebDatasetFactory));
}
