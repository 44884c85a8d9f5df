//! Table formats for image data, each a `TableProvider` of ours so a plan
//! that scans one can later travel to Ballista executors.

pub mod cifar;
pub mod cifar_exec;
pub mod codec;
pub mod imagefolder;
pub mod imagefolder_exec;
pub mod object_stores;
pub mod scan_settings;
pub mod tar_stream;
pub mod webdataset;
pub mod webdataset_exec;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

pub use cifar::{CifarFactory, CifarTable, CifarVariant};
pub use cifar_exec::CifarExec;
pub use imagefolder::{ImageFolderFactory, ImageFolderTable};
pub use imagefolder_exec::ImageFolderExec;
pub use webdataset::{WebDatasetFactory, WebDatasetTable};
pub use webdataset_exec::WebDatasetExec;

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
