//! Where a model argument's weights come from, and reading them.
//!
//! A model argument is a registry name (`ViT-B/32`), `hf:org/repo`, or a
//! local directory holding `config.json` + `model.safetensors` (Hugging Face
//! transformers layout). Hub files are fetched with `hf-hub` into the
//! standard Hugging Face cache (`HF_HOME`, default `~/.cache/huggingface`),
//! so a model downloaded by Python tools is reused and vice versa.

use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use hf_hub::{Cache, Repo};

use super::clip::ClipModel;
use super::clip_config::ClipConfig;
use super::registry::{Family, KnownModel, find_known, known_names};

const CONFIG_FILE: &str = "config.json";
const WEIGHTS_FILE: &str = "model.safetensors";

/// A failure to find, fetch or read a model, worded for the person who
/// typed the model argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError(pub String);

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModelError {}

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
            if !known.supported {
                return Err(ModelError(format!(
                    "model '{}' is a {} CLIP model, which this version cannot run yet; \
                     available: {}",
                    known.name,
                    known.family.as_str(),
                    supported_names()
                )));
            }
            return Ok(ModelRef {
                argument: argument.to_string(),
                source: ModelSource::Hub {
                    repo: known.hub_repo.to_string(),
                },
                known: Some(known),
            });
        }
        if let Some(repo) = trimmed.strip_prefix("hf:") {
            if repo.split('/').count() != 2 || repo.split('/').any(str::is_empty) {
                return Err(ModelError(format!(
                    "'{argument}' is not a Hugging Face repository; write hf:org/name"
                )));
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
        Err(ModelError(format!(
            "unknown model '{argument}'. Known models: {}. A model can also be a local \
             directory with {CONFIG_FILE} and {WEIGHTS_FILE} (Hugging Face CLIPModel layout), \
             or hf:org/repo for a Hugging Face repository",
            known_names()
        )))
    }

    /// A stable identity for caches: the repository or the directory.
    pub fn cache_key(&self) -> String {
        match &self.source {
            ModelSource::Hub { repo } => format!("hf:{repo}"),
            ModelSource::Directory(dir) => dir.display().to_string(),
        }
    }
}

fn supported_names() -> String {
    super::registry::KNOWN_MODELS
        .iter()
        .filter(|m| m.supported && m.family == Family::Vit)
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

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

/// The files of a model on local disk.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub config: PathBuf,
    pub weights: PathBuf,
}

/// Find (and for hub models, download when allowed) the file `name` of `model`.
fn fetch_file(model: &ModelRef, name: &str, hub: &HubOptions) -> Result<PathBuf, ModelError> {
    match &model.source {
        ModelSource::Directory(dir) => {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(ModelError(format!(
                    "model directory {} has no {name} (a CLIP model directory holds {CONFIG_FILE} \
                     and {WEIGHTS_FILE}, as transformers' CLIPModel.save_pretrained writes them)",
                    dir.display()
                )))
            }
        }
        ModelSource::Hub { repo } => {
            let cache = Cache::new(hub.cache_dir.clone());
            if let Some(path) = cache.model(repo.clone()).get(name) {
                return Ok(path);
            }
            if hub.offline {
                return Err(ModelError(format!(
                    "model '{}' is not in the Hugging Face cache and downloads are off \
                     (clip.offline or HF_HUB_OFFLINE): {name} of {repo} is missing under {}. \
                     Download it once with network access, or point the model argument at a \
                     local directory",
                    model.argument,
                    hub.cache_dir.display()
                )));
            }
            let mut builder =
                hf_hub::api::sync::ApiBuilder::from_cache(cache).with_progress(hub.progress);
            if let Some(endpoint) = &hub.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            let api = builder
                .build()
                .map_err(|e| ModelError(format!("cannot start the Hugging Face client: {e}")))?;
            api.repo(Repo::model(repo.clone())).get(name).map_err(|e| {
                ModelError(format!(
                    "cannot download {name} of {repo} (model '{}') into {}: {e}",
                    model.argument,
                    hub.cache_dir.display()
                ))
            })
        }
    }
}

/// The model's config, fetching only `config.json`.
pub fn fetch_config(model: &ModelRef, hub: &HubOptions) -> Result<ClipConfig, ModelError> {
    let path = fetch_file(model, CONFIG_FILE, hub)?;
    read_config(&path)
}

/// Both files of the model, fetching what is missing.
pub fn fetch_files(model: &ModelRef, hub: &HubOptions) -> Result<ModelFiles, ModelError> {
    Ok(ModelFiles {
        config: fetch_file(model, CONFIG_FILE, hub)?,
        weights: fetch_file(model, WEIGHTS_FILE, hub)?,
    })
}

/// Whether a registry model's files are already in the hub cache.
pub fn is_cached(known: &KnownModel, cache_dir: &Path) -> bool {
    let repo = Cache::new(cache_dir.to_path_buf()).model(known.hub_repo.to_string());
    repo.get(CONFIG_FILE).is_some() && repo.get(WEIGHTS_FILE).is_some()
}

/// Parse and check a `config.json`.
pub fn read_config(path: &Path) -> Result<ClipConfig, ModelError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ModelError(format!("cannot read {}: {e}", path.display())))?;
    let config = ClipConfig::from_json(&text)
        .map_err(|e| ModelError(format!("{} is not a CLIP config: {e}", path.display())))?;
    config
        .validate()
        .map_err(|e| ModelError(format!("{}: {e}", path.display())))?;
    Ok(config)
}

/// Read the weights into a model on `device` in `dtype`.
pub fn load_model(
    files: &ModelFiles,
    device: &Device,
    dtype: DType,
) -> Result<ClipModel, ModelError> {
    let config = read_config(&files.config)?;
    // Check the header before mapping: a truncated or foreign file gets a
    // sentence naming it rather than a failure deep inside the loader.
    let bytes = std::fs::File::open(&files.weights)
        .map_err(|e| ModelError(format!("cannot open {}: {e}", files.weights.display())))?;
    // SAFETY: the file is mapped read-only and the mapping lives only while
    // the tensors are copied out of it; a concurrent writer could change the
    // values read but not memory safety of this process beyond that, which
    // is the same contract every safetensors reader relies on.
    let mmap = unsafe { memmap2::Mmap::map(&bytes) }
        .map_err(|e| ModelError(format!("cannot map {}: {e}", files.weights.display())))?;
    safetensors::SafeTensors::deserialize(&mmap).map_err(|e| {
        ModelError(format!(
            "{} is not a valid safetensors file: {e}",
            files.weights.display()
        ))
    })?;
    drop(mmap);
    // SAFETY: as above.
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(std::slice::from_ref(&files.weights), dtype, device)
    }
    .map_err(|e| ModelError(format!("cannot read {}: {e}", files.weights.display())))?;
    ClipModel::new(vb, &config).map_err(|e| {
        ModelError(format!(
            "{} does not hold the CLIP weights its {CONFIG_FILE} describes: {e}",
            files.weights.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_model_lists_known_names_and_local_option() {
        let err = ModelRef::parse("ViT-Q/99").unwrap_err().0;
        assert!(err.contains("ViT-B/32"), "{err}");
        assert!(err.contains("local directory"), "{err}");
    }

    #[test]
    fn resnet_models_are_known_but_refused_clearly() {
        let err = ModelRef::parse("RN50").unwrap_err().0;
        assert!(err.contains("ResNet"), "{err}");
    }

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
        let err = fetch_files(&model, &hub).unwrap_err().0;
        assert!(err.contains("ViT-B/32"), "{err}");
        assert!(err.contains("openai/clip-vit-base-patch32"), "{err}");
        assert!(err.contains(&cache.path().display().to_string()), "{err}");
    }

    #[test]
    fn hf_prefix_needs_org_and_name() {
        assert!(ModelRef::parse("hf:just-a-name").is_err());
        let m = ModelRef::parse("hf:org/name").unwrap();
        assert_eq!(m.cache_key(), "hf:org/name");
    }
}
