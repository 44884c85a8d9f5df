//! Which files make up a CLIP checkpoint, in the two layouts the published
//! weights come in.
//!
//! - **Hugging Face transformers** (`openai/clip-vit-base-patch32`):
//!   `config.json` (a `CLIPConfig`) and `model.safetensors` or
//!   `pytorch_model.bin`, tensor names of `CLIPModel`.
//! - **OpenAI / open_clip** (`timm/vit_base_patch32_clip_224.openai`,
//!   `laion/CLIP-ViT-*`): `open_clip_config.json` and
//!   `open_clip_model.safetensors` or `open_clip_pytorch_model.bin`, tensor
//!   names of OpenAI's `model.py` state dict.
//!
//! open_clip's files come first: timm's repositories also hold a
//! `config.json` + `model.safetensors` pair, but that is timm's image tower
//! alone, not a CLIP model.

/// How a checkpoint names its tensors and describes its architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    HuggingFace,
    OpenClip,
}

impl Layout {
    pub fn as_str(&self) -> &'static str {
        match self {
            Layout::HuggingFace => "Hugging Face transformers",
            Layout::OpenClip => "OpenAI/open_clip",
        }
    }
}

/// How the tensors are serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightsFormat {
    Safetensors,
    /// `torch.save` zip archive of a state dict (read without Python).
    PyTorch,
}

/// A config file and a weights file that together are one checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSet {
    pub layout: Layout,
    pub config: &'static str,
    pub weights: &'static str,
    pub format: WeightsFormat,
}

/// The file sets a model directory or repository is searched for, in order
/// of preference (safetensors before pickles: no code, memory-mapped).
pub const FILE_SETS: &[FileSet] = &[
    FileSet {
        layout: Layout::OpenClip,
        config: "open_clip_config.json",
        weights: "open_clip_model.safetensors",
        format: WeightsFormat::Safetensors,
    },
    FileSet {
        layout: Layout::OpenClip,
        config: "open_clip_config.json",
        weights: "open_clip_pytorch_model.bin",
        format: WeightsFormat::PyTorch,
    },
    FileSet {
        layout: Layout::HuggingFace,
        config: "config.json",
        weights: "model.safetensors",
        format: WeightsFormat::Safetensors,
    },
    FileSet {
        layout: Layout::HuggingFace,
        config: "config.json",
        weights: "pytorch_model.bin",
        format: WeightsFormat::PyTorch,
    },
];

/// The first file set whose files `exists` says are there.
pub fn choose_file_set(exists: impl Fn(&str) -> bool) -> Option<&'static FileSet> {
    // A timm repository's `config.json` sits next to open_clip's files;
    // the order of FILE_SETS already prefers open_clip there.
    FILE_SETS
        .iter()
        .find(|set| exists(set.config) && exists(set.weights))
}

/// "config.json + model.safetensors, or ..." for error messages.
pub fn expected_files() -> String {
    FILE_SETS
        .iter()
        .map(|s| format!("{} + {}", s.config, s.weights))
        .collect::<Vec<_>>()
        .join(", or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timm_repositories_resolve_to_their_open_clip_files() {
        let timm = [
            "config.json",
            "model.safetensors",
            "open_clip_config.json",
            "open_clip_model.safetensors",
            "open_clip_pytorch_model.bin",
        ];
        let set = choose_file_set(|f| timm.contains(&f)).unwrap();
        assert_eq!(set.layout, Layout::OpenClip);
        assert_eq!(set.weights, "open_clip_model.safetensors");
    }

    #[test]
    fn pickles_are_used_only_without_safetensors() {
        let set = choose_file_set(|f| ["config.json", "pytorch_model.bin"].contains(&f)).unwrap();
        assert_eq!(
            (set.layout, set.format),
            (Layout::HuggingFace, WeightsFormat::PyTorch)
        );
        assert!(choose_file_set(|f| f == "config.json").is_none());
    }
}
