//! A model argument, understood: a registry name, a Hugging Face
//! repository or a local directory.

use std::path::{Path, PathBuf};

use super::layout::expected_files;
use crate::error::ModelError;
use crate::registry::{KnownModel, find_known, known_names};

/// Where a model's files live.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelSource {
    /// A Hugging Face repository.
    Hub { repo: String },
    /// A local directory.
    Directory(PathBuf),
}

/// A model argument, understood.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    /// What the user typed.
    pub argument: String,
    pub source: ModelSource,
    /// The registry entry when the argument named one.
    pub known: Option<&'static KnownModel>,
}

impl ModelRef {
    /// Parse a model argument: a registry name, `hf:org/repo`, or a local directory.
    pub fn parse(argument: &str) -> Result<ModelRef, ModelError> {
        let trimmed = argument.trim();
        if let Some(known) = find_known(trimmed) {
            return Ok(ModelRef {
                argument: argument.to_string(),
                source: ModelSource::Hub {
                    repo: known.hub_repo.to_string(),
                },
                known: Some(known),
            });
        }
        if let Some(repo) = trimmed
            .strip_prefix("hf:")
            .or_else(|| trimmed.strip_prefix("hf-hub:"))
        {
            if repo.split('/').count() != 2 || repo.split('/').any(str::is_empty) {
                return Err(ModelError::NotARepository {
                    argument: argument.to_string(),
                });
            }
            return Ok(ModelRef {
                argument: argument.to_string(),
                source: ModelSource::Hub {
                    repo: repo.to_string(),
                },
                known: None,
            });
        }
        let path = Path::new(trimmed);
        if path.is_dir() {
            let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
            return Ok(ModelRef {
                argument: argument.to_string(),
                source: ModelSource::Directory(canonical),
                known: None,
            });
        }
        Err(ModelError::UnknownModel {
            argument: argument.to_string(),
            known: known_names(),
            expected: expected_files(),
        })
    }

    /// A stable identity for caches: the repository or the directory.
    pub fn cache_key(&self) -> String {
        match &self.source {
            ModelSource::Hub { repo } => format!("hf:{repo}"),
            ModelSource::Directory(dir) => dir.display().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_model_lists_known_names_and_local_option() {
        let err = ModelRef::parse("ViT-Q/99").unwrap_err().to_string();
        assert!(err.contains("ViT-B/32"), "{err}");
        assert!(err.contains("local directory"), "{err}");
    }

    #[test]
    fn resnet_models_resolve_to_open_clip_repositories() {
        let m = ModelRef::parse("RN101").unwrap();
        assert_eq!(m.cache_key(), "hf:timm/resnet101_clip.openai");
    }

    #[test]
    fn hf_prefix_needs_org_and_name() {
        assert!(matches!(
            ModelRef::parse("hf:just-a-name"),
            Err(ModelError::NotARepository { .. })
        ));
        let m = ModelRef::parse("hf:org/name").unwrap();
        assert_eq!(m.cache_key(), "hf:org/name");
    }
}
