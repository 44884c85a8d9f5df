//! The ResNet family through SQL by name: `RN50` and `RN101` resolve to
//! open_clip's hub repositories (`timm/resnet50_clip.openai`, ...), read
//! here from a local Hugging Face cache holding random-weight checkpoints of
//! the published embedding widths (small stems and stages, to keep the test
//! fast; the layer counts and widths are read from each checkpoint's config).
//! Fidelity against open_clip is the model crate's
//! `tests/model/fidelity_models.rs`.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use clip_model::ClipConfig;
use clip_model::checkpoint::write_random_model;

/// Put a random ResNet CLIP into `hf_home`'s hub cache as `repo`.
fn cache_model(hf_home: &Path, repo: &str, embed_dim: usize, seed: u64) {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo_dir = hf_home
        .join("hub")
        .join(format!("models--{}", repo.replace('/', "--")));
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(repo_dir.join("refs/main"), commit).unwrap();
    let mut config = ClipConfig::resnet([1, 2, 1, 1], 8, 224, embed_dim, 16, 2);
    config.text_config.num_hidden_layers = 2;
    write_random_model(&repo_dir.join("snapshots").join(commit), &config, seed).unwrap();
}

fn clip_sql(hf_home: &Path, script: &str) -> Output {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), script).unwrap();
    Command::new(env!("CARGO_BIN_EXE_clip-sql"))
        .current_dir(crate::common::repo())
        .args(["-q", "--format", "csv", "-f"])
        .arg(file.path())
        .env("HF_HOME", hf_home)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

#[test]
fn rn50_and_rn101_run_through_sql_by_name() {
    let hf_home = tempfile::tempdir().unwrap();
    cache_model(hf_home.path(), "timm/resnet50_clip.openai", 1024, 50);
    cache_model(hf_home.path(), "timm/resnet101_clip.openai", 512, 101);
    let pets = common::pets_folder();
    let out = clip_sql(
        hf_home.path(),
        &format!(
            "CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{}/';
             SELECT count(*) AS n,
                    min(array_length(clip_embed_image('RN50', image), 1)) AS rn50_dim,
                    count(clip_embed_image('RN50', image)) AS rn50_rows,
                    sum(CASE WHEN clip_zero_shot('RN101', image, ['cat', 'dog'])['label']
                             IN ('cat', 'dog') THEN 1 ELSE 0 END) AS rn101_labelled
             FROM pets;",
            pets.path().display()
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(rows.last().copied(), Some("5,1024,5,5"), "{stdout}");
}

#[test]
fn resnet_embeddings_are_finite_and_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ClipConfig::resnet([1, 1, 1, 1], 8, 64, 32, 16, 2);
    config.text_config.num_hidden_layers = 1;
    write_random_model(dir.path(), &config, 7).unwrap();
    let ctx = common::context();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let model = dir.path().display().to_string();
    let text = rt.block_on(common::query_text(
        &ctx,
        &format!(
            "SELECT cosine_similarity(
                 clip_embed_image('{model}', arrow_cast(X'{}', 'Binary')),
                 clip_embed_image('{model}', arrow_cast(X'{}', 'Binary'))) AS s",
            hex(&common::png_bytes(80, 70, 1)),
            hex(&common::png_bytes(70, 90, 9)),
        ),
    ));
    let s: f32 = common::table_rows(&text)[0][0].parse().unwrap();
    assert!(s.is_finite() && s < 0.999_9, "{text}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
