//! Where a model argument's weights come from, and reading them.
//!
//! A model argument is a registry name (`ViT-B/32`), `hf:org/repo` (or
//! open_clip's `hf-hub:org/repo`), or a local directory ([`ModelRef`])
//! holding a checkpoint in one of the layouts of [`layout`]: Hugging Face
//! transformers ([`hf`]: `config.json` + `model.safetensors`) or
//! OpenAI/open_clip ([`open_clip`]: `open_clip_config.json` +
//! `open_clip_model.safetensors`). `.bin` PyTorch pickles are read too,
//! without Python and without running pickled code. Hub files are fetched
//! with `hf-hub` into the standard Hugging Face cache ([`hub`]), so a model
//! downloaded by Python tools is reused and vice versa. [`random`] writes
//! random weights in either layout, for tests and benchmarks.

pub mod hf;
pub mod hub;
pub mod layout;
pub mod model_files;
pub mod model_ref;
pub mod open_clip;
pub mod random;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

pub use hub::{HubOptions, fetch_config, fetch_files, is_cached};
pub use layout::{FileSet, Layout, WeightsFormat};
pub use model_files::{ModelFiles, read_config};
pub use model_ref::{ModelRef, ModelSource};
pub use random::write_random_model;

use crate::clip::ClipModel;
use crate::config::ClipConfig;
use crate::error::{ModelError, without_backtrace};

/// Read the weights into a model on `device` in `dtype`.
pub fn load_model(
    files: &ModelFiles,
    device: &Device,
    dtype: DType,
) -> Result<ClipModel, ModelError> {
    let config = read_config(&files.config, files.set.layout)?;
    if config.resnet.is_some() && dtype == DType::BF16 && device.is_cpu() {
        // candle's CPU convolution has no bf16 kernel.
        return Err(ModelError::Bf16ResNetOnCpu);
    }
    let path = &files.weights;
    let unreadable = |source| ModelError::UnreadableWeights {
        path: path.clone(),
        source: Box::new(without_backtrace(source)),
    };
    let refuse_extra_layers =
        |names: &mut dyn Iterator<Item = &str>| match extra_layers(names, &config) {
            Some((blocks, in_weights, in_config)) => Err(ModelError::ExtraLayers {
                path: path.clone(),
                config_file: files.set.config,
                blocks,
                in_weights,
                in_config,
            }),
            None => Ok(()),
        };
    let vb = match (files.set.layout, files.set.format) {
        (Layout::HuggingFace, WeightsFormat::Safetensors) => {
            let names = check_safetensors(path)?;
            refuse_extra_layers(&mut names.iter().map(String::as_str))?;
            // SAFETY: the file is mapped read-only for the life of the
            // builder; the contract every safetensors reader relies on.
            unsafe {
                VarBuilder::from_mmaped_safetensors(std::slice::from_ref(path), dtype, device)
            }
            .map_err(unreadable)?
        }
        (layout, format) => {
            let tensors = read_tensors(path, format)?;
            let tensors = match layout {
                Layout::OpenClip => {
                    open_clip::to_hugging_face_names(tensors).map_err(|source| {
                        ModelError::Checkpoint {
                            path: path.clone(),
                            source,
                        }
                    })?
                }
                Layout::HuggingFace => tensors,
            };
            refuse_extra_layers(&mut tensors.keys().map(String::as_str))?;
            VarBuilder::from_tensors(tensors, dtype, device)
        }
    };
    ClipModel::new(vb, &config).map_err(|source| ModelError::WeightsDoNotMatch {
        path: path.clone(),
        config_file: files.set.config,
        source: Box::new(without_backtrace(source)),
    })
}

/// Layers the weights hold (tensor names in transformers' layout) beyond
/// those the config builds, which candle would silently leave unread: what
/// they are, how many the weights have, how many the config.
fn extra_layers(
    names: &mut dyn Iterator<Item = &str>,
    config: &ClipConfig,
) -> Option<(String, usize, usize)> {
    let mut stacks: Vec<(String, String, usize)> = vec![(
        "text_model.encoder.layers.".to_string(),
        "text transformer layers".to_string(),
        config.text_config.num_hidden_layers,
    )];
    match &config.resnet {
        None => stacks.push((
            "vision_model.encoder.layers.".to_string(),
            "image transformer layers".to_string(),
            config.vision_config.num_hidden_layers,
        )),
        Some(resnet) => stacks.extend(resnet.layers.iter().enumerate().map(|(i, &blocks)| {
            (
                format!("visual.layer{}.", i + 1),
                format!("blocks in ResNet stage {}", i + 1),
                blocks,
            )
        })),
    }
    let mut found = vec![0usize; stacks.len()];
    for name in names {
        for (stack, count) in stacks.iter().zip(found.iter_mut()) {
            let index = name
                .strip_prefix(stack.0.as_str())
                .and_then(|rest| rest.split('.').next())
                .and_then(|index| index.parse::<usize>().ok());
            if let Some(index) = index {
                *count = (*count).max(index + 1);
            }
        }
    }
    stacks
        .into_iter()
        .zip(found)
        .find(|((_, _, in_config), in_weights)| in_weights > in_config)
        .map(|((_, blocks, in_config), in_weights)| (blocks, in_weights, in_config))
}

/// Check a safetensors header before use: a truncated or foreign file gets
/// a sentence naming it rather than a failure deep inside the loader.
/// Returns the tensor names.
fn check_safetensors(path: &Path) -> Result<Vec<String>, ModelError> {
    let io = |action| {
        move |source| ModelError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    };
    let file = std::fs::File::open(path).map_err(io("open"))?;
    // SAFETY: read-only mapping, dropped before returning.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io("map"))?;
    match safetensors::SafeTensors::deserialize(&mmap) {
        Ok(tensors) => Ok(tensors.names().into_iter().map(str::to_string).collect()),
        Err(source) => Err(match (&source, truncated_tensor(&mmap)) {
            (safetensors::SafeTensorError::MetadataIncompleteBuffer, Some((tensor, needed))) => {
                ModelError::TruncatedWeights {
                    path: path.to_path_buf(),
                    size: mmap.len(),
                    tensor,
                    needed,
                }
            }
            (safetensors::SafeTensorError::MetadataIncompleteBuffer, None) => {
                ModelError::InvalidSafetensors {
                    path: path.to_path_buf(),
                    reason: "its size does not match its header".to_string(),
                    source,
                }
            }
            _ => ModelError::InvalidSafetensors {
                path: path.to_path_buf(),
                reason: source.to_string(),
                source,
            },
        }),
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

/// Whether the file starts as a zip archive does (`PK\x03\x04`).
fn starts_with_zip_header(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut header = [0u8; 4];
    match std::fs::File::open(path)?.read_exact(&mut header) {
        Ok(()) => Ok(header == *b"PK\x03\x04"),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every tensor of a weights file, on the CPU in the stored dtype.
fn read_tensors(path: &Path, format: WeightsFormat) -> Result<HashMap<String, Tensor>, ModelError> {
    let fail = |source| ModelError::UnreadableWeights {
        path: path.to_path_buf(),
        source: Box::new(without_backtrace(source)),
    };
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
            // torch.save writes a zip archive since PyTorch 1.6; candle reads
            // only that, and would say "invalid Zip archive" of the rest.
            if !starts_with_zip_header(path).map_err(|e| fail(e.into()))? {
                return Err(ModelError::LegacyPickle {
                    path: path.to_path_buf(),
                });
            }
            // candle's reader interprets only the pickle opcodes that build
            // tensors: no Python, no code from the file runs.
            let mut tensors = candle_core::pickle::read_all(path).map_err(fail)?;
            if tensors.is_empty() {
                // Training checkpoints nest the weights under "state_dict".
                tensors = candle_core::pickle::read_all_with_key(path, Some("state_dict"))
                    .map_err(fail)?;
            }
            if tensors.is_empty() {
                return Err(ModelError::NoTensors {
                    path: path.to_path_buf(),
                });
            }
            Ok(tensors.into_iter().collect())
        }
    }
}
