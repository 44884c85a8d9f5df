//! The models a SQL query can name: OpenAI's `clip.load` names (and
//! open_clip's spellings), what they are and where their weights live.
//! A table of facts, shown by `clip_models()`.

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

/// One published CLIP checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KnownModel {
    /// OpenAI's name, as `clip.load` takes it.
    pub name: &'static str,
    /// Other spellings accepted (open_clip's).
    pub aliases: &'static [&'static str],
    pub family: Family,
    /// Width of the joint embedding.
    pub embed_dim: usize,
    /// Input resolution in pixels.
    pub image_size: usize,
    /// Hugging Face repository of the weights.
    pub hub_repo: &'static str,
    /// Whether this build can run the family.
    pub supported: bool,
}

/// Every model the registry knows, in the order `clip_models()` lists them.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        name: "RN50",
        aliases: &["RN50-openai"],
        family: Family::ResNet,
        embed_dim: 1024,
        image_size: 224,
        hub_repo: "timm/resnet50_clip.openai",
        supported: true,
    },
    KnownModel {
        name: "RN101",
        aliases: &["RN101-openai"],
        family: Family::ResNet,
        embed_dim: 512,
        image_size: 224,
        hub_repo: "timm/resnet101_clip.openai",
        supported: true,
    },
    KnownModel {
        name: "RN50x4",
        aliases: &["RN50x4-openai"],
        family: Family::ResNet,
        embed_dim: 640,
        image_size: 288,
        hub_repo: "timm/resnet50x4_clip.openai",
        supported: true,
    },
    KnownModel {
        name: "RN50x16",
        aliases: &["RN50x16-openai"],
        family: Family::ResNet,
        embed_dim: 768,
        image_size: 384,
        hub_repo: "timm/resnet50x16_clip.openai",
        supported: true,
    },
    KnownModel {
        name: "RN50x64",
        aliases: &["RN50x64-openai"],
        family: Family::ResNet,
        embed_dim: 1024,
        image_size: 448,
        hub_repo: "timm/resnet50x64_clip.openai",
        supported: true,
    },
    KnownModel {
        name: "ViT-B/32",
        aliases: &["ViT-B-32", "ViT-B-32-openai"],
        family: Family::Vit,
        embed_dim: 512,
        image_size: 224,
        hub_repo: "openai/clip-vit-base-patch32",
        supported: true,
    },
    KnownModel {
        name: "ViT-B/16",
        aliases: &["ViT-B-16", "ViT-B-16-openai"],
        family: Family::Vit,
        embed_dim: 512,
        image_size: 224,
        hub_repo: "openai/clip-vit-base-patch16",
        supported: true,
    },
    KnownModel {
        name: "ViT-L/14",
        aliases: &["ViT-L-14", "ViT-L-14-openai"],
        family: Family::Vit,
        embed_dim: 768,
        image_size: 224,
        hub_repo: "openai/clip-vit-large-patch14",
        supported: true,
    },
    KnownModel {
        name: "ViT-L/14@336px",
        aliases: &["ViT-L-14-336", "ViT-L-14-336-openai", "ViT-L/14-336"],
        family: Family::Vit,
        embed_dim: 768,
        image_size: 336,
        hub_repo: "openai/clip-vit-large-patch14-336",
        supported: true,
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
        assert_eq!(find_known("ViT-L-14-336").unwrap().image_size, 336);
        assert!(find_known("ViT-H/14").is_none());
    }
}
