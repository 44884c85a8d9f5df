//! Fetching a checkpoint's files from the Hugging Face hub into the
//! standard cache (`HF_HOME`, default `~/.cache/huggingface`), or finding
//! them there when downloads are off.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use hf_hub::{Cache, Repo};

use super::layout::{FILE_SETS, FileSet, choose_file_set, expected_files};
use super::model_files::{ModelFiles, read_config};
use super::model_ref::{ModelRef, ModelSource};
use crate::config::ClipConfig;
use crate::error::ModelError;
use crate::registry::KnownModel;

/// How to reach the Hugging Face hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Never download; only the cache is read.
    pub offline: bool,
    /// The hub cache (`$HF_HOME/hub`).
    pub cache_dir: PathBuf,
    /// Hub address (`HF_ENDPOINT`, default `https://huggingface.co`).
    pub endpoint: Option<String>,
    /// Show download progress bars.
    pub progress: bool,
}

impl HubOptions {
    /// The environment's hub settings (`HF_HOME`, `HF_ENDPOINT`), with
    /// `offline` as the session says.
    pub fn from_env(offline: bool) -> HubOptions {
        HubOptions {
            offline,
            cache_dir: Cache::from_env().path().clone(),
            endpoint: std::env::var("HF_ENDPOINT").ok(),
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }
}

/// Find the model's checkpoint, downloading what is missing when allowed:
/// the config always, the weights when `with_weights`.
fn locate(
    model: &ModelRef,
    hub: &HubOptions,
    with_weights: bool,
) -> Result<(&'static FileSet, PathBuf, Option<PathBuf>), ModelError> {
    let repo = match &model.source {
        ModelSource::Directory(dir) => {
            let files = ModelFiles::in_directory(dir)?;
            return Ok((files.set, files.config, Some(files.weights)));
        }
        ModelSource::Hub { repo } => repo,
    };
    let cache = Cache::new(hub.cache_dir.clone());
    let cached = cache.model(repo.clone());
    if let Some(set) = choose_file_set(|f| cached.get(f).is_some())
        && let (Some(config), Some(weights)) = (cached.get(set.config), cached.get(set.weights))
    {
        return Ok((set, config, Some(weights)));
    }
    if !with_weights
        && let Some((set, config)) = FILE_SETS
            .iter()
            .find_map(|set| Some((set, cached.get(set.config)?)))
    {
        // Planning needs only the config; the weights come at execution.
        return Ok((set, config, None));
    }
    if hub.offline {
        return Err(ModelError::NotCached {
            argument: model.argument.clone(),
            repo: repo.clone(),
            expected: expected_files(),
            cache_dir: hub.cache_dir.clone(),
        });
    }
    let hub_error = |action: String| move |source| ModelError::Hub { action, source };
    let mut builder = hf_hub::api::sync::ApiBuilder::from_cache(cache).with_progress(hub.progress);
    if let Some(endpoint) = &hub.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let api = builder
        .build()
        .map_err(hub_error("start the Hugging Face client".to_string()))?;
    let api_repo = api.repo(Repo::model(repo.clone()));
    let listing: HashSet<String> = api_repo
        .info()
        .map_err(hub_error(format!(
            "list the files of {repo} (model '{}')",
            model.argument
        )))?
        .siblings
        .into_iter()
        .map(|s| s.rfilename)
        .collect();
    let set = choose_file_set(|f| listing.contains(f)).ok_or_else(|| {
        ModelError::NoCheckpointInRepository {
            repo: repo.clone(),
            argument: model.argument.clone(),
            expected: expected_files(),
        }
    })?;
    let download = |name: &str| {
        api_repo.get(name).map_err(hub_error(format!(
            "download {name} of {repo} (model '{}') into {}",
            model.argument,
            hub.cache_dir.display()
        )))
    };
    let config = download(set.config)?;
    let weights = if with_weights {
        Some(download(set.weights)?)
    } else {
        None
    };
    Ok((set, config, weights))
}

/// The model's config, fetching only the config file.
pub fn fetch_config(model: &ModelRef, hub: &HubOptions) -> Result<ClipConfig, ModelError> {
    let (set, config, _) = locate(model, hub, false)?;
    read_config(&config, set.layout)
}

/// Both files of the model, fetching what is missing.
pub fn fetch_files(model: &ModelRef, hub: &HubOptions) -> Result<ModelFiles, ModelError> {
    let (set, config, weights) = locate(model, hub, true)?;
    let weights = weights.ok_or_else(|| ModelError::WeightsNotFound {
        argument: model.argument.clone(),
    })?;
    Ok(ModelFiles {
        config,
        weights,
        set,
    })
}

/// Whether a registry model's files are already in the hub cache.
pub fn is_cached(known: &KnownModel, cache_dir: &Path) -> bool {
    let repo = Cache::new(cache_dir.to_path_buf()).model(known.hub_repo.to_string());
    choose_file_set(|f| repo.get(f).is_some()).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_miss_names_model_repo_and_cache() {
        let cache = tempfile::tempdir().unwrap();
        let hub = HubOptions {
            offline: true,
            cache_dir: cache.path().to_path_buf(),
            endpoint: None,
            progress: false,
        };
        let model = ModelRef::parse("ViT-B/32").unwrap();
        let err = fetch_files(&model, &hub).unwrap_err();
        assert!(matches!(err, ModelError::NotCached { .. }), "{err}");
        let err = err.to_string();
        assert!(err.contains("ViT-B/32"), "{err}");
        assert!(err.contains("openai/clip-vit-base-patch32"), "{err}");
        assert!(err.contains(&cache.path().display().to_string()), "{err}");
    }
}
