//! The published models a user can name: OpenAI's `clip.load` names (and
//! open_clip's spellings), their architecture, and where their weights
//! live. A table of facts, the one place they are written: the model
//! argument's parser, `clip_models()`, the efficiency bench and the
//! random-weight writer all read it.

use crate::config::ClipConfig;

/// Model family, which decides the image tower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Vit,
    ResNet,
}

impl Family {
    pub fn as_str(&self) -> &'static str {
        match self {
            Family::Vit => "ViT",
            Family::ResNet => "ResNet",
        }
    }
}

/// The numbers that make a published architecture (OpenAI's `model.py`
/// hyper-parameters; open_clip's `model_configs/*.json` hold the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    Vit {
        width: usize,
        layers: usize,
        heads: usize,
        image_size: usize,
        patch_size: usize,
        embed_dim: usize,
        text_width: usize,
        text_heads: usize,
    },
    ResNet {
        /// Bottleneck blocks per stage.
        layers: [usize; 4],
        width: usize,
        image_size: usize,
        embed_dim: usize,
        text_width: usize,
        text_heads: usize,
    },
}

/// One published CLIP checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KnownModel {
    /// OpenAI's name, as `clip.load` takes it.
    pub name: &'static str,
    /// Other spellings accepted (open_clip's).
    pub aliases: &'static [&'static str],
    /// Hugging Face repository of the weights.
    pub hub_repo: &'static str,
    pub architecture: Architecture,
}

impl KnownModel {
    pub fn family(&self) -> Family {
        match self.architecture {
            Architecture::Vit { .. } => Family::Vit,
            Architecture::ResNet { .. } => Family::ResNet,
        }
    }

    /// Width of the joint embedding.
    pub fn embed_dim(&self) -> usize {
        match self.architecture {
            Architecture::Vit { embed_dim, .. } | Architecture::ResNet { embed_dim, .. } => {
                embed_dim
            }
        }
    }

    /// Input resolution in pixels.
    pub fn image_size(&self) -> usize {
        match self.architecture {
            Architecture::Vit { image_size, .. } | Architecture::ResNet { image_size, .. } => {
                image_size
            }
        }
    }

    /// The full architecture, as its checkpoint's config describes it.
    pub fn config(&self) -> ClipConfig {
        match self.architecture {
            Architecture::Vit {
                width,
                layers,
                heads,
                image_size,
                patch_size,
                embed_dim,
                text_width,
                text_heads,
            } => ClipConfig::vit(
                width, layers, heads, image_size, patch_size, embed_dim, text_width, text_heads,
            ),
            Architecture::ResNet {
                layers,
                width,
                image_size,
                embed_dim,
                text_width,
                text_heads,
            } => ClipConfig::resnet(layers, width, image_size, embed_dim, text_width, text_heads),
        }
    }

    /// Trainable parameters.
    pub fn parameter_count(&self) -> usize {
        self.config().parameter_count()
    }
}

const fn resnet(
    layers: [usize; 4],
    width: usize,
    image_size: usize,
    embed_dim: usize,
    text_width: usize,
) -> Architecture {
    Architecture::ResNet {
        layers,
        width,
        image_size,
        embed_dim,
        text_width,
        text_heads: text_width / 64,
    }
}

const fn vit(
    (width, layers, heads): (usize, usize, usize),
    image_size: usize,
    patch_size: usize,
    embed_dim: usize,
) -> Architecture {
    Architecture::Vit {
        width,
        layers,
        heads,
        image_size,
        patch_size,
        embed_dim,
        text_width: embed_dim,
        text_heads: embed_dim / 64,
    }
}

/// Every model the registry knows, in the order `clip_models()` lists them.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        name: "RN50",
        aliases: &["RN50-openai"],
        hub_repo: "timm/resnet50_clip.openai",
        architecture: resnet([3, 4, 6, 3], 64, 224, 1024, 512),
    },
    KnownModel {
        name: "RN101",
        aliases: &["RN101-openai"],
        hub_repo: "timm/resnet101_clip.openai",
        architecture: resnet([3, 4, 23, 3], 64, 224, 512, 512),
    },
    KnownModel {
        name: "RN50x4",
        aliases: &["RN50x4-openai"],
        hub_repo: "timm/resnet50x4_clip.openai",
        architecture: resnet([4, 6, 10, 6], 80, 288, 640, 640),
    },
    KnownModel {
        name: "RN50x16",
        aliases: &["RN50x16-openai"],
        hub_repo: "timm/resnet50x16_clip.openai",
        architecture: resnet([6, 8, 18, 8], 96, 384, 768, 768),
    },
    KnownModel {
        name: "RN50x64",
        aliases: &["RN50x64-openai"],
        hub_repo: "timm/resnet50x64_clip.openai",
        architecture: resnet([3, 15, 36, 10], 128, 448, 1024, 1024),
    },
    KnownModel {
        name: "ViT-B/32",
        aliases: &["ViT-B-32", "ViT-B-32-openai"],
        hub_repo: "openai/clip-vit-base-patch32",
        architecture: vit((768, 12, 12), 224, 32, 512),
    },
    KnownModel {
        name: "ViT-B/16",
        aliases: &["ViT-B-16", "ViT-B-16-openai"],
        hub_repo: "openai/clip-vit-base-patch16",
        architecture: vit((768, 12, 12), 224, 16, 512),
    },
    KnownModel {
        name: "ViT-L/14",
        aliases: &["ViT-L-14", "ViT-L-14-openai"],
        hub_repo: "openai/clip-vit-large-patch14",
        architecture: vit((1024, 24, 16), 224, 14, 768),
    },
    KnownModel {
        name: "ViT-L/14@336px",
        aliases: &["ViT-L-14-336", "ViT-L-14-336-openai", "ViT-L/14-336"],
        hub_repo: "openai/clip-vit-large-patch14-336",
        architecture: vit((1024, 24, 16), 336, 14, 768),
    },
];

/// Look a model up by name or alias (case-insensitive).
pub fn find_known(name: &str) -> Option<&'static KnownModel> {
    let name = name.trim();
    KNOWN_MODELS.iter().find(|m| {
        m.name.eq_ignore_ascii_case(name) || m.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    })
}

/// The names a user can type, for error messages.
pub fn known_names() -> String {
    KNOWN_MODELS
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_openai_and_open_clip_spellings() {
        assert_eq!(
            find_known("ViT-B/32").unwrap().hub_repo,
            "openai/clip-vit-base-patch32"
        );
        assert_eq!(find_known("vit-b-32").unwrap().name, "ViT-B/32");
        assert_eq!(find_known("ViT-L-14-336").unwrap().image_size(), 336);
        assert!(find_known("ViT-H/14").is_none());
    }

    /// The architectures give the parameter counts open_clip publishes for
    /// OpenAI's checkpoints (`docs/openclip_classification_results.csv`,
    /// millions to two decimals), so every shape in the table is right.
    #[test]
    fn architectures_have_the_published_parameter_counts() {
        let published = [
            ("RN50", 102.01),
            ("RN101", 119.69),
            ("RN50x4", 178.3),
            ("RN50x16", 290.98),
            ("RN50x64", 623.26),
            ("ViT-B/32", 151.28),
            ("ViT-B/16", 149.62),
            ("ViT-L/14", 427.62),
            ("ViT-L/14@336px", 427.94),
        ];
        assert_eq!(published.len(), KNOWN_MODELS.len());
        for (name, millions) in published {
            let model = find_known(name).unwrap();
            let counted = model.parameter_count() as f64 / 1e6;
            assert!(
                (counted - millions).abs() < 0.005,
                "{name}: {counted:.4}M parameters, published {millions}M"
            );
            let config = model.config();
            config.validate().unwrap();
            assert_eq!(config.projection_dim, model.embed_dim(), "{name}");
            assert_eq!(
                config.vision_config.image_size,
                model.image_size(),
                "{name}"
            );
            assert_eq!(config.resnet.is_some(), model.family() == Family::ResNet);
        }
    }
}
