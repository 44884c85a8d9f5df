//! Zero-shot predictions through SQL (`clip_zero_shot` over the fixture
//! images' bytes: our decoding, preprocessing, towers and classifier)
//! against the reference implementations on the same random weights, top-1
//! and top-5 on every fixture image, for every fixture model (the model
//! crate's `tests/model/fidelity_models.rs` checks their embeddings). The
//! full-size cases run with
//! `CLIP_FULL_FIXTURES=DIR cargo test --release --test it fidelity_zero_shot -- --ignored`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{AsArray, StringArray};
use datafusion::arrow::datatypes::Int32Type;

use crate::common;

/// What `reference.json` says about zero-shot classification.
#[derive(serde::Deserialize)]
struct Reference {
    images: Vec<String>,
    labels: Vec<String>,
    templates: Vec<String>,
    zero_shot_top5: Vec<Vec<usize>>,
}

fn fixtures() -> PathBuf {
    Path::new(crate::common::repo()).join("tests/fixtures")
}

fn sql_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// `clip_zero_shot` over the fixture images' bytes (our decoding and
/// preprocessing, not the reference's pixels): top-1 and top-5 per image.
async fn zero_shot_through_sql(dir: &Path, reference: &Reference) -> HashMap<String, Vec<usize>> {
    let ctx = common::context();
    let images = fixtures().join("images");
    common::query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE fixture_images STORED AS IMAGEFOLDER LOCATION '{}/'",
            images.display()
        ),
    )
    .await
    .unwrap();
    let sql = format!(
        "SELECT path, clip_zero_shot('{}', image, {}, {}) AS p FROM fixture_images",
        dir.display(),
        sql_list(&reference.labels),
        sql_list(&reference.templates)
    );
    let mut out = HashMap::new();
    for batch in common::query(&ctx, &sql).await.unwrap() {
        let paths = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let p = batch.column(1).as_struct();
        let top5 = p.column_by_name("top5").unwrap().as_list::<i32>();
        for row in 0..batch.num_rows() {
            let name = paths.value(row).rsplit('/').next().unwrap().to_string();
            let ranks = top5.value(row);
            let ranks = ranks.as_primitive::<Int32Type>();
            out.insert(name, ranks.values().iter().map(|&r| r as usize).collect());
        }
    }
    out
}

/// Zero-shot top-1 and top-5 equal to the reference's on every fixture image.
async fn compare_zero_shot(dir: &Path) {
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let ours = zero_shot_through_sql(dir, &reference).await;
    // The folder may hold images added to the fixtures after the model's
    // reference was written; every referenced one must be there.
    let missing: Vec<&String> = reference
        .images
        .iter()
        .filter(|image| !ours.contains_key(*image))
        .collect();
    assert!(missing.is_empty(), "not read: {missing:?}");
    let mut differing = Vec::new();
    for (image, expected) in reference.images.iter().zip(&reference.zero_shot_top5) {
        if ours[image] != *expected {
            differing.push(format!(
                "{image}: ours {:?}, reference {expected:?}",
                ours[image]
            ));
        }
    }
    assert!(
        differing.is_empty(),
        "{}: {}",
        dir.display(),
        differing.join("\n")
    );
}

/// The fixture models (tests/fixtures/models/).
const TINY: [&str; 4] = [
    "hf_tiny",
    "open_clip_tiny",
    "open_clip_tiny_bin",
    "open_clip_resnet_tiny",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_shot_top5_matches_the_reference_on_every_image() {
    for name in TINY {
        compare_zero_shot(&fixtures().join("models").join(name)).await;
    }
}

/// The full-size cases of `python tests/fixtures/make_reference.py full DIR`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs CLIP_FULL_FIXTURES from make_reference.py full (several GB)"]
async fn full_size_models_zero_shot_as_the_reference() {
    let root = PathBuf::from(
        std::env::var("CLIP_FULL_FIXTURES")
            .expect("set CLIP_FULL_FIXTURES to the directory make_reference.py full wrote"),
    );
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("reference.json").is_file())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no cases under {}", root.display());
    for dir in dirs {
        compare_zero_shot(&dir).await;
    }
}
