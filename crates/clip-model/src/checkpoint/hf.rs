//! The Hugging Face transformers layout: `config.json` is a `CLIPConfig`
//! and the tensors have `CLIPModel`'s names, which the towers read as they
//! are (`vision_model.*`, `text_model.*`, `visual_projection`, ...).

use crate::config::ClipConfig;
use crate::error::ConfigError;

/// A transformers `CLIPConfig`. Every field has a default, so a config of
/// another model (timm's, BERT's) would parse as ViT-B/32: demand the two
/// tower sections CLIPConfig always writes.
pub fn config_from_json(text: &str) -> Result<ClipConfig, ConfigError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(ConfigError::NotJson)?;
    if value.get("text_config").is_none() || value.get("vision_config").is_none() {
        let model_type = value
            .get("model_type")
            .or_else(|| value.get("architecture"))
            .map(|v| v.to_string())
            .unwrap_or_else(|| "unknown".to_string());
        return Err(ConfigError::NotClip { model_type });
    }
    ClipConfig::from_json(text).map_err(|source| ConfigError::Malformed {
        what: "a CLIP config",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_models_config_is_not_taken_for_vit_b_32() {
        let err = config_from_json(r#"{"model_type": "bert", "hidden_size": 768}"#).unwrap_err();
        assert!(matches!(err, ConfigError::NotClip { .. }), "{err}");
        assert!(err.to_string().contains("\"bert\""), "{err}");
        let ok = config_from_json(r#"{"text_config": {}, "vision_config": {}}"#).unwrap();
        assert_eq!(ok.projection_dim, 512);
    }
}
