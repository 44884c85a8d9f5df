//! Random-weight models at the published shapes, for speed figures where
//! the real weights cannot be downloaded. Speed does not depend on the
//! weights' values, only on their shapes (random values avoid the
//! denormals and zeros that would flatter or slow a run).

use std::path::{Path, PathBuf};

use clip_model::checkpoint::write_random_model;
use clip_model::find_known;
use clip_model::registry::known_names;

use super::error::BenchError;
use crate::files::file_name_part;

/// A directory holding a random model shaped like the registry model
/// `name`, under `cache`; written on first use (in the layout the real
/// checkpoint uses).
pub fn random_model_dir(cache: &Path, name: &str) -> Result<PathBuf, BenchError> {
    let known = find_known(name).ok_or_else(|| BenchError::UnknownShape {
        name: name.to_string(),
        known: known_names(),
    })?;
    let dir = cache.join(format!("{}-random", file_name_part(known.name)));
    let done = dir.join("complete");
    if !done.is_file() {
        write_random_model(&dir, &known.config(), 0)?;
        // Written last: a run interrupted mid-write is redone.
        std::fs::write(&done, b"").map_err(|source| BenchError::Io {
            action: "write",
            path: done.clone(),
            source,
        })?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_refused_naming_the_known_ones() {
        let err = random_model_dir(Path::new("/nonexistent"), "ViT-H/14")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ViT-B/32") && err.contains("RN50x64"), "{err}");
    }
}
