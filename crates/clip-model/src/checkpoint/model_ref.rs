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
            if !is_hub_repo_id(repo) {
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

/// Whether `repo` is an `org/name` the Hugging Face hub accepts (its
/// `validate_repo_id`): two parts of letters, digits, `-`, `_` and `.`, none
/// starting or ending with `-` or `.`, no `--` or `..`, at most 96
/// characters. Anything else (`../etc`, `org/name/extra`) would become a
/// path in the cache or a URL the hub refuses, so it is refused here.
fn is_hub_repo_id(repo: &str) -> bool {
    let part_ok = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !part.starts_with(['-', '.'])
            && !part.ends_with(['-', '.'])
    };
    let parts: Vec<&str> = repo.split('/').collect();
    repo.len() <= 96
        && !repo.contains("--")
        && !repo.contains("..")
        && parts.len() == 2
        && parts.iter().all(|part| part_ok(part))
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

    #[test]
    fn hf_repository_names_are_checked_as_the_hub_checks_them() {
        for ok in [
            "openai/clip-vit-base-patch32",
            "timm/resnet50_clip.openai",
            "a/b",
        ] {
            assert!(ModelRef::parse(&format!("hf:{ok}")).is_ok(), "{ok}");
        }
        let long = format!("org/{}", "n".repeat(93));
        for bad in [
            "../etc",
            "org/..",
            "org/../etc",
            "./name",
            "org/name/extra",
            "org/na me",
            "org/name-",
            "org/-name",
            "org/na--me",
            "org/café",
            long.as_str(),
        ] {
            let err = ModelRef::parse(&format!("hf:{bad}")).unwrap_err();
            assert!(
                matches!(err, ModelError::NotARepository { .. }),
                "{bad}: {err}"
            );
        }
    }
}
