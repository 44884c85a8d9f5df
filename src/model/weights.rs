//! Where a model argument's weights come from, and reading them.
//!
//! A model argument is a registry name (`ViT-B/32`), `hf:org/repo` (or
//! open_clip's `hf-hub:org/repo`), or a local directory holding a checkpoint
//! in one of the layouts of [`super::layout`]: Hugging Face transformers
//! (`config.json` + `model.safetensors`) or OpenAI/open_clip
//! (`open_clip_config.json` + `open_clip_model.safetensors`). `.bin` PyTorch
//! pickles are read too, without Python and without running pickled code.
//! Hub files are fetched with `hf-hub` into the standard Hugging Face cache
//! (`HF_HOME`, default `~/.cache/huggingface`), so a model downloaded by
//! Python tools is reused and vice versa.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use hf_hub::{Cache, Repo};

use super::clip::ClipModel;
use super::clip_config::ClipConfig;
use super::layout::{FILE_SETS, FileSet, Layout, WeightsFormat, choose_file_set, expected_files};
use super::open_clip_layout;
use super::registry::{KnownModel, find_known, known_names};

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
        if let Some(repo) = trimmed
            .strip_prefix("hf:")
            .or_else(|| trimmed.strip_prefix("hf-hub:"))
        {
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
             directory holding {}, or hf:org/repo for a Hugging Face repository",
            known_names(),
            expected_files()
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
        .filter(|m| m.supported)
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
    /// Which layout and format they are.
    pub set: &'static FileSet,
}

impl ModelFiles {
    /// The checkpoint in a local directory, in whichever layout it holds.
    pub fn in_directory(dir: &Path) -> Result<ModelFiles, ModelError> {
        let set = choose_file_set(|f| dir.join(f).is_file()).ok_or_else(|| {
            ModelError(format!(
                "model directory {} holds no CLIP checkpoint: expected {} (as transformers' \
                 CLIPModel.save_pretrained or open_clip's hub upload writes them)",
                dir.display(),
                expected_files()
            ))
        })?;
        Ok(ModelFiles {
            config: dir.join(set.config),
            weights: dir.join(set.weights),
            set,
        })
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
        return Err(ModelError(format!(
            "model '{}' is not in the Hugging Face cache and downloads are off \
             (clip.offline or HF_HUB_OFFLINE): {repo} has no {} under {}. Download it once \
             with network access, or point the model argument at a local directory",
            model.argument,
            expected_files(),
            hub.cache_dir.display()
        )));
    }
    let mut builder = hf_hub::api::sync::ApiBuilder::from_cache(cache).with_progress(hub.progress);
    if let Some(endpoint) = &hub.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let api = builder
        .build()
        .map_err(|e| ModelError(format!("cannot start the Hugging Face client: {e}")))?;
    let api_repo = api.repo(Repo::model(repo.clone()));
    let listing: HashSet<String> = api_repo
        .info()
        .map_err(|e| {
            ModelError(format!(
                "cannot list the files of {repo} (model '{}'): {e}",
                model.argument
            ))
        })?
        .siblings
        .into_iter()
        .map(|s| s.rfilename)
        .collect();
    let set = choose_file_set(|f| listing.contains(f)).ok_or_else(|| {
        ModelError(format!(
            "{repo} (model '{}') holds no CLIP checkpoint this version reads: expected {}",
            model.argument,
            expected_files()
        ))
    })?;
    let download = |name: &str| {
        api_repo.get(name).map_err(|e| {
            ModelError(format!(
                "cannot download {name} of {repo} (model '{}') into {}: {e}",
                model.argument,
                hub.cache_dir.display()
            ))
        })
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
    let weights = weights.ok_or_else(|| {
        ModelError(format!(
            "the weights of model '{}' were not found",
            model.argument
        ))
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

/// Parse and check a config file of the given layout.
pub fn read_config(path: &Path, layout: Layout) -> Result<ClipConfig, ModelError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ModelError(format!("cannot read {}: {e}", path.display())))?;
    let config = match layout {
        Layout::HuggingFace => hugging_face_config(&text),
        Layout::OpenClip => open_clip_layout::config_from_json(&text),
    }
    .map_err(|e| ModelError(format!("{}: {e}", path.display())))?;
    config
        .validate()
        .map_err(|e| ModelError(format!("{}: {e}", path.display())))?;
    Ok(config)
}

/// A transformers `CLIPConfig`. Every field has a default, so a config of
/// another model (timm's, BERT's) would parse as ViT-B/32: demand the two
/// tower sections CLIPConfig always writes.
fn hugging_face_config(text: &str) -> Result<ClipConfig, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if value.get("text_config").is_none() || value.get("vision_config").is_none() {
        let kind = value
            .get("model_type")
            .or_else(|| value.get("architecture"))
            .map(|v| v.to_string())
            .unwrap_or_else(|| "unknown".to_string());
        return Err(format!(
            "not a CLIP config (no text_config and vision_config; model type {kind})"
        ));
    }
    ClipConfig::from_json(text).map_err(|e| format!("not a CLIP config: {e}"))
}

/// Read the weights into a model on `device` in `dtype`.
pub fn load_model(
    files: &ModelFiles,
    device: &Device,
    dtype: DType,
) -> Result<ClipModel, ModelError> {
    let config = read_config(&files.config, files.set.layout)?;
    if config.resnet.is_some() && dtype == DType::BF16 && device.is_cpu() {
        // candle's CPU convolution has no bf16 kernel.
        return Err(ModelError(
            "ResNet models cannot run in bf16 on the CPU; set clip.dtype to 'f32' or 'f16'"
                .to_string(),
        ));
    }
    let path = files.weights.display();
    let vb = match (files.set.layout, files.set.format) {
        (Layout::HuggingFace, WeightsFormat::Safetensors) => {
            check_safetensors(&files.weights)?;
            // SAFETY: the file is mapped read-only for the life of the
            // builder; the contract every safetensors reader relies on.
            unsafe {
                VarBuilder::from_mmaped_safetensors(
                    std::slice::from_ref(&files.weights),
                    dtype,
                    device,
                )
            }
            .map_err(|e| ModelError(format!("cannot read {path}: {e}")))?
        }
        (layout, format) => {
            let tensors = read_tensors(&files.weights, format)?;
            let tensors = match layout {
                Layout::OpenClip => open_clip_layout::to_hugging_face_names(tensors)
                    .map_err(|e| ModelError(format!("{path}: {e}")))?,
                Layout::HuggingFace => tensors,
            };
            VarBuilder::from_tensors(tensors, dtype, device)
        }
    };
    ClipModel::new(vb, &config).map_err(|e| {
        ModelError(format!(
            "{path} does not hold the CLIP weights its {} describes: {e}",
            files.set.config
        ))
    })
}

/// Check a safetensors header before use: a truncated or foreign file gets
/// a sentence naming it rather than a failure deep inside the loader.
fn check_safetensors(path: &Path) -> Result<(), ModelError> {
    let file = std::fs::File::open(path)
        .map_err(|e| ModelError(format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: read-only mapping, dropped before returning.
    let mmap = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| ModelError(format!("cannot map {}: {e}", path.display())))?;
    match safetensors::SafeTensors::deserialize(&mmap) {
        Ok(_) => Ok(()),
        Err(safetensors::SafeTensorError::MetadataIncompleteBuffer) => {
            Err(ModelError(match truncated_tensor(&mmap) {
                Some((tensor, needed)) => format!(
                    "{} is truncated: it has {} bytes but tensor '{tensor}' ends at byte {needed} \
                     (an interrupted download? delete the file and run again to fetch it)",
                    path.display(),
                    mmap.len()
                ),
                None => format!(
                    "{} is not a valid safetensors file: its size does not match its header",
                    path.display()
                ),
            }))
        }
        Err(e) => Err(ModelError(format!(
            "{} is not a valid safetensors file: {e}",
            path.display()
        ))),
    }
}

/// In a safetensors file shorter than its header says: the first tensor
/// (by position) whose bytes run past the end, and the byte it needs.
fn truncated_tensor(file: &[u8]) -> Option<(String, usize)> {
    let header_len = usize::try_from(u64::from_le_bytes(file.get(..8)?.try_into().ok()?)).ok()?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(file.get(8..8usize.checked_add(header_len)?)?).ok()?;
    let data_start = 8 + header_len;
    header
        .iter()
        .filter_map(|(name, info)| {
            let offsets = info.get("data_offsets")?.as_array()?;
            let end = usize::try_from(offsets.get(1)?.as_u64()?).ok()?;
            Some((name.clone(), data_start.checked_add(end)?))
        })
        .filter(|(_, end)| *end > file.len())
        .min_by_key(|(_, end)| *end)
}

/// Every tensor of a weights file, on the CPU in the stored dtype.
fn read_tensors(path: &Path, format: WeightsFormat) -> Result<HashMap<String, Tensor>, ModelError> {
    let fail = |e: candle_core::Error| ModelError(format!("cannot read {}: {e}", path.display()));
    match format {
        WeightsFormat::Safetensors => {
            check_safetensors(path)?;
            // SAFETY: as in check_safetensors; tensors are copied out.
            let st =
                unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }.map_err(fail)?;
            st.tensors()
                .into_iter()
                .map(|(name, _)| Ok((name.clone(), st.load(&name, &Device::Cpu).map_err(fail)?)))
                .collect()
        }
        WeightsFormat::PyTorch => {
            // candle's reader interprets only the pickle opcodes that build
            // tensors: no Python, no code from the file runs.
            let mut tensors = candle_core::pickle::read_all(path).map_err(fail)?;
            if tensors.is_empty() {
                // Training checkpoints nest the weights under "state_dict".
                tensors = candle_core::pickle::read_all_with_key(path, Some("state_dict"))
                    .map_err(fail)?;
            }
            if tensors.is_empty() {
                return Err(ModelError(format!(
                    "{} holds no tensors (not a PyTorch state dict)",
                    path.display()
                )));
            }
            Ok(tensors.into_iter().collect())
        }
    }
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
    fn resnet_models_resolve_to_open_clip_repositories() {
        let m = ModelRef::parse("RN101").unwrap();
        assert_eq!(m.cache_key(), "hf:timm/resnet101_clip.openai");
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
