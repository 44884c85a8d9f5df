//! Which files on local disk make a model, and reading its config from
//! them in whichever layout it has.

use std::path::{Path, PathBuf};

use super::layout::{FileSet, Layout, choose_file_set, expected_files};
use super::{hf, open_clip};
use crate::config::ClipConfig;
use crate::error::ModelError;

/// The files of a model on local disk.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub config: PathBuf,
    pub weights: PathBuf,
    /// Which layout and format they are.
    pub set: &'static FileSet,
}

impl ModelFiles {
    /// The checkpoint in a local directory, in whichever layout it holds.
    pub fn in_directory(dir: &Path) -> Result<ModelFiles, ModelError> {
        let set = choose_file_set(|f| dir.join(f).is_file()).ok_or_else(|| {
            ModelError::NoCheckpointInDirectory {
                dir: dir.to_path_buf(),
                expected: expected_files(),
            }
        })?;
        Ok(ModelFiles {
            config: dir.join(set.config),
            weights: dir.join(set.weights),
            set,
        })
    }
}

/// Parse and check a config file of the given layout.
pub fn read_config(path: &Path, layout: Layout) -> Result<ClipConfig, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    let config = match layout {
        Layout::HuggingFace => hf::config_from_json(&text),
        Layout::OpenClip => open_clip::config_from_json(&text),
    };
    config
        .and_then(|config| config.validate().map(|()| config))
        .map_err(|source| ModelError::Config {
            path: path.to_path_buf(),
            source,
        })
}
