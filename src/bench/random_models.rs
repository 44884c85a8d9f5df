//! Random-weight models at the published shapes, for speed figures where
//! the real weights cannot be downloaded. Speed does not depend on the
//! weights' values, only on their shapes (random values avoid the
//! denormals and zeros that would flatter or slow a run).

use std::path::{Path, PathBuf};

use crate::file_name::file_name_part;
use crate::model::ClipConfig;
use crate::model::random_weights::{write_random_model, write_random_resnet_model};

/// The published architecture of `name` (the DESIGN.md model names).
pub fn published_config(name: &str) -> Option<ClipConfig> {
    Some(match name {
        "RN50" => ClipConfig::rn50(),
        "RN101" => ClipConfig::rn101(),
        "ViT-B/32" => ClipConfig::vit_b_32(),
        "ViT-B/16" => ClipConfig::vit_b_16(),
        "ViT-L/14" => ClipConfig::vit_l_14(),
        "ViT-L/14@336px" => ClipConfig::vit_l_14_336(),
        _ => return None,
    })
}

/// A directory holding a random model shaped like `name`, under `cache`;
/// written on first use (in the layout the real checkpoint uses).
pub fn random_model_dir(cache: &Path, name: &str) -> Result<PathBuf, String> {
    let config = published_config(name).ok_or_else(|| {
        format!(
            "no published shape known for '{name}' (random weights exist for \
             RN50, RN101, ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px)"
        )
    })?;
    let dir = cache.join(format!("{}-random", file_name_part(name)));
    let done = dir.join("complete");
    if !done.is_file() {
        if config.resnet.is_some() {
            write_random_resnet_model(&dir, &config, 0).map_err(|e| e.0)?;
        } else {
            write_random_model(&dir, &config, 0).map_err(|e| e.0)?;
        }
        // Written last: a run interrupted mid-write is redone.
        std::fs::write(&done, b"").map_err(|e| format!("cannot write {}: {e}", done.display()))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_efficiency_table_model_has_a_shape() {
        for name in [
            "RN50",
            "RN101",
            "ViT-B/32",
            "ViT-B/16",
            "ViT-L/14",
            "ViT-L/14@336px",
        ] {
            assert!(published_config(name).is_some(), "{name}");
        }
        assert_eq!(
            published_config("ViT-L/14@336px")
                .unwrap()
                .vision_config
                .image_size,
            336
        );
        let err = random_model_dir(Path::new("/nonexistent"), "ViT-H/14").unwrap_err();
        assert!(err.contains("ViT-B/32"), "{err}");
    }
}
