//! The `clip.*` settings: a DataFusion [`ConfigExtension`], so that
//! `SET clip.batch_size = 64` works in SQL, in `clip-sql` and in any service
//! that called [`crate::register`]. Values are checked when they are set, so
//! a typo fails at the `SET`, not in the middle of a query.

use std::any::Any;
use std::fmt;

use datafusion::common::config::{
    ConfigEntry, ConfigExtension, DATAFUSION_FFI_CONFIG_NAMESPACE, ExtensionOptions,
};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};

use clip_model::image::MAX_IMAGE_PIXELS;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceSetting {
    /// `cuda:0` when this build has CUDA and a GPU is present, else the CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

impl fmt::Display for DeviceSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSetting::Auto => f.write_str("auto"),
            DeviceSetting::Cpu => f.write_str("cpu"),
            DeviceSetting::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for DeviceSetting {
    type Err = DataFusionError;
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "auto" => Ok(DeviceSetting::Auto),
            "cpu" => Ok(DeviceSetting::Cpu),
            "cuda" | "gpu" => Ok(DeviceSetting::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSetting::Cuda)
                .ok_or_else(|| {
                    DataFusionError::Configuration(format!(
                        "clip.device must be 'auto', 'cpu' or 'cuda:N', got '{s}'"
                    ))
                }),
        }
    }
}

/// Floating-point type of the model weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtypeSetting {
    /// f32 on the CPU, f16 on a GPU.
    Auto,
    F32,
    F16,
    Bf16,
}

impl fmt::Display for DtypeSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DtypeSetting::Auto => "auto",
            DtypeSetting::F32 => "f32",
            DtypeSetting::F16 => "f16",
            DtypeSetting::Bf16 => "bf16",
        })
    }
}

impl std::str::FromStr for DtypeSetting {
    type Err = DataFusionError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DtypeSetting::Auto),
            "f32" | "float32" | "fp32" => Ok(DtypeSetting::F32),
            "f16" | "float16" | "fp16" | "half" => Ok(DtypeSetting::F16),
            "bf16" | "bfloat16" => Ok(DtypeSetting::Bf16),
            _ => Err(DataFusionError::Configuration(format!(
                "clip.dtype must be 'auto', 'f32', 'f16' or 'bf16', got '{s}'"
            ))),
        }
    }
}

/// What a row whose image cannot be decoded gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnErrorSetting {
    /// The row's result is NULL; the query goes on.
    Null,
    /// The query fails with a message naming the row.
    Error,
}

impl fmt::Display for OnErrorSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnErrorSetting::Null => "null",
            OnErrorSetting::Error => "error",
        })
    }
}

impl std::str::FromStr for OnErrorSetting {
    type Err = DataFusionError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "null" => Ok(OnErrorSetting::Null),
            "error" => Ok(OnErrorSetting::Error),
            _ => Err(DataFusionError::Configuration(format!(
                "clip.on_error must be 'null' or 'error', got '{s}'"
            ))),
        }
    }
}

/// Images per forward pass on the CPU when `clip.batch_size` is `auto`.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Images per forward pass on a GPU when `clip.batch_size` is `auto`: where
/// an H100 reaches its best images/s for the ViTs and ResNets.
pub const DEFAULT_GPU_BATCH_SIZE: usize = 256;

/// `clip.max_image_bytes` by default: larger than any uncompressed RGB
/// image within `clip.max_image_pixels`' default needs in practice, small
/// enough that one file cannot take the machine's memory.
pub const DEFAULT_MAX_IMAGE_BYTES: usize = 512 << 20;
/// The largest `clip.max_image_bytes` accepted: an image column's offsets
/// are 32-bit, so no batch may hold 2 GiB of image bytes; batches are cut
/// at [`crate::formats::image_scan::BATCH_IMAGE_BYTES`] and one file of at
/// most this size always fits.
pub const MAX_IMAGE_BYTES_LIMIT: usize = 1 << 30;

/// The `clip.*` settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClipOptions {
    /// `clip.device`: `auto` | `cpu` | `cuda:N`.
    pub device: DeviceSetting,
    /// `clip.dtype`: `auto` | `f32` | `f16` | `bf16`.
    pub dtype: DtypeSetting,
    /// `clip.batch_size`: images (or prompts) per forward pass; `None` is
    /// `auto` (see [`ClipOptions::batch_size_on`]).
    pub batch_size: Option<usize>,
    /// `clip.on_error`: `null` | `error`.
    pub on_error: OnErrorSetting,
    /// `clip.offline`: never download; a missing model is an error.
    pub offline: bool,
    /// `clip.max_image_pixels`: images with more pixels (decoded, or after
    /// the resize) are refused before their pixels are allocated.
    pub max_image_pixels: usize,
    /// `clip.max_image_bytes`: an image table gives a file (or WebDataset
    /// member) larger than this a NULL image without reading it, or fails
    /// the query under `clip.on_error = 'error'`.
    pub max_image_bytes: usize,
}

impl Default for ClipOptions {
    fn default() -> Self {
        Self {
            device: DeviceSetting::Auto,
            dtype: DtypeSetting::Auto,
            batch_size: None,
            on_error: OnErrorSetting::Null,
            offline: false,
            max_image_pixels: MAX_IMAGE_PIXELS,
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
        }
    }
}

impl ClipOptions {
    /// The settings of a session, or the defaults when [`crate::register`]
    /// was not called on it. A value that does not parse (possible only
    /// through the FFI, see [`Self::resolve`]) is logged and the defaults
    /// are used; the functions' own calls use [`Self::resolve`], which
    /// fails instead.
    pub fn from_config(config: &ConfigOptions) -> ClipOptions {
        Self::resolve(config, &ClipOptions::default()).unwrap_or_else(|e| {
            log::warn!("{e}; using the default clip.* settings");
            ClipOptions::default()
        })
    }

    /// The settings a call runs with: the session's `clip.*` extension
    /// when it has one (every session [`crate::register`] set up).
    /// Otherwise the functions were reached through DataFusion's FFI (from
    /// datafusion-python), where a session carries foreign settings as
    /// plain `clip.<name>` entries of its `datafusion_ffi` namespace: those
    /// entries over `fallback` (the settings the functions were made with),
    /// each checked as `SET` would check it — the FFI namespace stores any
    /// value, so a bad one is an error here rather than silently ignored.
    pub fn resolve(config: &ConfigOptions, fallback: &ClipOptions) -> Result<ClipOptions> {
        if let Some(options) = config.extensions.get::<ClipOptions>() {
            return Ok(options.clone());
        }
        let mut options = fallback.clone();
        let foreign = config
            .extensions
            .iter()
            .filter(|(namespace, _)| *namespace == DATAFUSION_FFI_CONFIG_NAMESPACE)
            .flat_map(|(_, extension)| extension.entries());
        for entry in foreign {
            if let (Some(name), Some(value)) = (entry.key.strip_prefix("clip."), entry.value) {
                options.set(name, &value)?;
            }
        }
        Ok(options)
    }

    /// Offline when `clip.offline` is set or the environment says so, as the
    /// Hugging Face tools read it (`HF_HUB_OFFLINE=1`).
    pub fn is_offline(&self) -> bool {
        self.offline || env_flag("HF_HUB_OFFLINE")
    }

    /// Images (or prompts) per forward pass for a model on `device`.
    pub fn batch_size_on(&self, device: &candle_core::Device) -> usize {
        self.batch_size.unwrap_or(if device.is_cpu() {
            DEFAULT_BATCH_SIZE
        } else {
            DEFAULT_GPU_BATCH_SIZE
        })
    }
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        _ => Err(DataFusionError::Configuration(format!(
            "clip.{key} must be true or false, got '{value}'"
        ))),
    }
}

impl ConfigExtension for ClipOptions {
    const PREFIX: &'static str = "clip";
}

impl ExtensionOptions for ClipOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        // DataFusion may hand us the key with or without the prefix.
        let key = key.strip_prefix("clip.").unwrap_or(key);
        match key {
            "device" => self.device = value.parse()?,
            "dtype" => self.dtype = value.parse()?,
            "batch_size" => {
                self.batch_size = match value.trim().parse::<usize>() {
                    _ if value.trim().eq_ignore_ascii_case("auto") => None,
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        return Err(DataFusionError::Configuration(format!(
                            "clip.batch_size must be a positive integer or 'auto', got '{value}'"
                        )));
                    }
                }
            }
            "on_error" => self.on_error = value.parse()?,
            "offline" => self.offline = parse_bool(key, value)?,
            "max_image_pixels" => {
                self.max_image_pixels = match value.trim().replace('_', "").parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        return Err(DataFusionError::Configuration(format!(
                            "clip.max_image_pixels must be a positive integer, got '{value}'"
                        )));
                    }
                }
            }
            "max_image_bytes" => {
                self.max_image_bytes = match value.trim().replace('_', "").parse::<usize>() {
                    Ok(n) if (1..=MAX_IMAGE_BYTES_LIMIT).contains(&n) => n,
                    _ => {
                        return Err(DataFusionError::Configuration(format!(
                            "clip.max_image_bytes must be a positive integer of at most \
                             {MAX_IMAGE_BYTES_LIMIT} (1 GiB), got '{value}'"
                        )));
                    }
                }
            }
            _ => {
                return Err(DataFusionError::Configuration(format!(
                    "unknown setting 'clip.{key}'; the clip settings are clip.device, clip.dtype, \
                     clip.batch_size, clip.on_error, clip.offline, clip.max_image_pixels and \
                     clip.max_image_bytes"
                )));
            }
        }
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        let entry = |key: &str, value: String, description: &'static str| ConfigEntry {
            key: format!("clip.{key}"),
            value: Some(value),
            description,
        };
        vec![
            entry(
                "device",
                self.device.to_string(),
                "Where CLIP models run: auto (cuda:0 when built with CUDA and a GPU is present, else cpu), cpu, or cuda:N",
            ),
            entry(
                "dtype",
                self.dtype.to_string(),
                "Model precision: auto (f32 on CPU, f16 on GPU), f32, f16 or bf16",
            ),
            entry(
                "batch_size",
                self.batch_size
                    .map_or_else(|| "auto".to_string(), |n| n.to_string()),
                "Images or prompts per forward pass: auto (32 on the CPU, 256 on a GPU) or a positive integer",
            ),
            entry(
                "on_error",
                self.on_error.to_string(),
                "What an undecodable image gives: null (the row is NULL) or error (the query fails)",
            ),
            entry(
                "offline",
                self.offline.to_string(),
                "Never download weights; a model missing from the Hugging Face cache is an error (HF_HUB_OFFLINE=1 does the same)",
            ),
            entry(
                "max_image_pixels",
                self.max_image_pixels.to_string(),
                "Largest image accepted, in pixels (decoded, or after resizing the short side); larger ones are refused like undecodable images (decompression-bomb guard; Pillow's limit by default)",
            ),
            entry(
                "max_image_bytes",
                self.max_image_bytes.to_string(),
                "Largest image file (or WebDataset member) an image table reads, in bytes, at most 1 GiB; a larger one is a NULL image, not read (an error under clip.on_error = 'error')",
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_validates_values() {
        let mut o = ClipOptions::default();
        o.set("batch_size", "64").unwrap();
        o.set("device", "CUDA:1").unwrap();
        o.set("dtype", "bf16").unwrap();
        o.set("on_error", "error").unwrap();
        o.set("offline", "true").unwrap();
        o.set("max_image_pixels", "1_000_000").unwrap();
        assert_eq!(o.max_image_pixels, 1_000_000);
        assert!(
            o.set("max_image_pixels", "-5")
                .unwrap_err()
                .to_string()
                .contains("clip.max_image_pixels")
        );
        o.set("max_image_bytes", "1_048_576").unwrap();
        assert_eq!(o.max_image_bytes, 1 << 20);
        for too_big_or_small in ["0", "1073741825", "big"] {
            assert!(
                o.set("max_image_bytes", too_big_or_small)
                    .unwrap_err()
                    .to_string()
                    .contains("at most 1073741824 (1 GiB)")
            );
        }
        assert_eq!(o.batch_size, Some(64));
        assert_eq!(o.batch_size_on(&candle_core::Device::Cpu), 64);
        assert_eq!(o.device, DeviceSetting::Cuda(1));
        assert_eq!(o.dtype, DtypeSetting::Bf16);
        assert_eq!(o.on_error, OnErrorSetting::Error);
        assert!(o.offline);
        o.set("batch_size", "AUTO").unwrap();
        assert_eq!(o.batch_size, None);
        assert_eq!(
            o.batch_size_on(&candle_core::Device::Cpu),
            DEFAULT_BATCH_SIZE
        );
        assert!(
            o.set("batch_size", "0")
                .unwrap_err()
                .to_string()
                .contains("positive")
        );
        assert!(
            o.set("device", "tpu")
                .unwrap_err()
                .to_string()
                .contains("clip.device")
        );
        assert!(
            o.set("colour", "red")
                .unwrap_err()
                .to_string()
                .contains("unknown setting")
        );
    }

    /// What datafusion-python's session holds for settings of ours: plain
    /// `clip.<name>` entries in the `datafusion_ffi` namespace.
    #[derive(Debug, Clone, Default)]
    struct ForeignOptions(Vec<(String, String)>);

    impl ConfigExtension for ForeignOptions {
        const PREFIX: &'static str = DATAFUSION_FFI_CONFIG_NAMESPACE;
    }

    impl ExtensionOptions for ForeignOptions {
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
        fn cloned(&self) -> Box<dyn ExtensionOptions> {
            Box::new(self.clone())
        }
        fn set(&mut self, key: &str, value: &str) -> Result<()> {
            self.0.push((key.to_string(), value.to_string()));
            Ok(())
        }
        fn entries(&self) -> Vec<ConfigEntry> {
            self.0
                .iter()
                .map(|(key, value)| ConfigEntry {
                    key: key.clone(),
                    value: Some(value.clone()),
                    description: "",
                })
                .collect()
        }
    }

    #[test]
    fn settings_reached_through_the_ffi_namespace_are_read_and_checked() {
        let fallback = ClipOptions {
            on_error: OnErrorSetting::Error,
            ..ClipOptions::default()
        };
        let mut config = ConfigOptions::new();
        // No settings of ours at all: the functions' own.
        assert_eq!(ClipOptions::resolve(&config, &fallback).unwrap(), fallback);

        config.extensions.insert(ForeignOptions(vec![
            ("clip.batch_size".into(), "7".into()),
            ("someone_else.batch_size".into(), "9".into()),
        ]));
        let options = ClipOptions::resolve(&config, &fallback).unwrap();
        assert_eq!(options.batch_size, Some(7));
        assert_eq!(options.on_error, OnErrorSetting::Error);

        // The FFI namespace stores anything; a bad value fails the call.
        config.extensions.insert(ForeignOptions(vec![(
            "clip.batch_size".into(),
            "lots".into(),
        )]));
        let err = ClipOptions::resolve(&config, &fallback)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("clip.batch_size must be a positive integer"),
            "{err}"
        );
        assert_eq!(ClipOptions::from_config(&config), ClipOptions::default());

        // A session of our own wins.
        config.extensions.insert(ClipOptions::default());
        let options = ClipOptions::resolve(&config, &fallback).unwrap();
        assert_eq!(options, ClipOptions::default());
    }
}
