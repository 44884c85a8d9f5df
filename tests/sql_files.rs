//! The shipped SQL files, run offline by `clip-sql`: the CIFAR-10 benchmark
//! against a local Parquet file in the Hugging Face layout and the tiny
//! model, and a script that calls every function through the binary.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::*;
use datafusion::arrow::array::{BinaryArray, Int64Array, RecordBatch, StringArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema};

const CIFAR10_URL: &str = "https://huggingface.co/datasets/uoft-cs/cifar10/resolve/main/plain_text/test-00000-of-00001.parquet";

/// A stand-in for the CIFAR-10 test Parquet: `img` struct<bytes, path> of
/// 32x32 PNGs and `label` 0..9, `per_class` images per class.
async fn cifar10_standin(path: &std::path::Path, per_class: usize) {
    let image_fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("img", DataType::Struct(image_fields.clone()), true),
        Field::new("label", DataType::Int64, true),
    ]));
    let n = 10 * per_class;
    let bytes = BinaryArray::from_iter_values((0..n as u32).map(|i| png_bytes(32, 32, i)));
    let paths = StringArray::from_iter_values((0..n).map(|i| format!("{i}.png")));
    let img =
        StructArray::try_new(image_fields, vec![Arc::new(bytes), Arc::new(paths)], None).unwrap();
    let labels = Int64Array::from_iter_values((0..n as i64).map(|i| i % 10));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(img), Arc::new(labels)]).unwrap();
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.read_batch(batch)
        .unwrap()
        .write_parquet(path.to_str().unwrap(), Default::default(), None)
        .await
        .unwrap();
}

fn run_clip_sql(file: &std::path::Path) -> (String, String, bool) {
    run_clip_sql_with(file, &[])
}

fn run_clip_sql_with(file: &std::path::Path, extra: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_clip-sql"))
        .args(["-q", "--format", "csv", "-f", file.to_str().unwrap()])
        .args(extra)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cifar10_benchmark_file_runs_end_to_end_on_a_local_standin() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("test-00000-of-00001.parquet");
    cifar10_standin(&parquet, 3).await;
    let file = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sql/benchmarks/cifar10.sql"
    ));
    let sql = std::fs::read_to_string(file).unwrap();
    assert!(
        sql.contains(&format!("'${{data:-{CIFAR10_URL}}}'")),
        "by default the benchmark reads the Hugging Face file"
    );
    assert!(sql.contains("'${model:-ViT-B/32}'"));
    // The file itself, pointed elsewhere from the command line.
    let data = format!("data={}", parquet.display());
    let model = format!("model={}", tiny_model());
    let (stdout, stderr, ok) = run_clip_sql_with(file, &["--param", &data, "--param", &model]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let summary = lines
        .iter()
        .position(|l| *l == "model,dataset,split,n,n_failed,acc1,acc5")
        .expect(&stdout);
    let cells: Vec<&str> = lines[summary + 1].split(',').collect();
    assert_eq!(&cells[1..5], ["cifar10", "test", "30", "0"], "{stdout}");
    let acc1: f64 = cells[5].parse().unwrap();
    let acc5: f64 = cells[6].parse().unwrap();
    assert!(
        (0.0..=100.0).contains(&acc1) && acc1 <= acc5 && acc5 <= 100.0,
        "{stdout}"
    );
    let per_class = lines
        .iter()
        .position(|l| *l == "class,n,acc1")
        .expect(&stdout);
    let classes: Vec<&str> = lines[per_class + 1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        classes,
        [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck"
        ],
        "{stdout}"
    );
    assert!(
        lines[per_class + 1..]
            .iter()
            .all(|l| l.split(',').nth(1) == Some("3")),
        "{stdout}"
    );
}

#[test]
fn every_function_runs_through_the_binary() {
    let images = pets_folder();
    let m = tiny_model();
    let script = format!(
        "CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{dir}';
CREATE TABLE emb AS SELECT path, label, clip_embed_image('{m}', image) AS e FROM pets;
SELECT count(e) AS embedded FROM emb;
SELECT count(*) AS ranked FROM (SELECT cosine_similarity(e, clip_embed_text('{m}', 'a cat')) AS s FROM emb) WHERE s BETWEEN -1 AND 1;
SELECT sum(array_length(clip_zero_shot_probs('{m}', e, ['cat', 'dog', 'bird']))) AS probs FROM emb;
SELECT count(clip_zero_shot('{m}', e, ['cat', 'dog'])['label']) AS predicted FROM emb;
SELECT count(*) AS models FROM clip_models() WHERE supported;
",
        dir = images.path().display()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.sql");
    std::fs::write(&file, script).unwrap();
    let (stdout, stderr, ok) = run_clip_sql(&file);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    for (header, value) in [
        ("embedded", "5"),
        ("ranked", "5"),
        ("probs", "15"),
        ("predicted", "5"),
        ("models", "9"),
    ] {
        let at = lines
            .iter()
            .position(|l| *l == header)
            .unwrap_or_else(|| panic!("no {header} in {stdout}"));
        assert_eq!(lines[at + 1], value, "{header} in {stdout}");
    }
}

#[test]
fn bad_images_example_counts_failures_and_gives_reasons() {
    let mut wrong_magic = png_bytes(30, 30, 3);
    wrong_magic[..4].copy_from_slice(b"GARB");
    let jpeg = jpeg_bytes(80, 60, 1);
    let images = folder(&[
        ("cat/good1.png", png_bytes(40, 30, 1)),
        ("cat/good2.jpg", jpeg_bytes(50, 64, 2)),
        ("dog/good3.png", gray_png_bytes(33, 33)),
        ("dog/good4.png", rgba_png_bytes(64, 48)),
        ("cat/empty.jpg", Vec::new()),
        ("cat/truncated.jpg", jpeg[..jpeg.len() / 2].to_vec()),
        ("dog/wrong_magic.png", wrong_magic),
    ]);
    let file = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sql/examples/bad_images.sql"
    ));
    let data = format!("data={}/", images.path().display());
    let model = format!("model={}", tiny_model());
    let (stdout, stderr, ok) = run_clip_sql_with(file, &["--param", &data, "--param", &model]);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let summary = lines
        .iter()
        .position(|l| *l == "n,n_predicted,n_failed,acc1")
        .expect(&stdout);
    assert!(lines[summary + 1].starts_with("7,4,3,"), "{stdout}");
    let reasons = lines
        .iter()
        .position(|l| *l == "reason,images")
        .expect(&stdout);
    let reasons = &lines[reasons + 1..];
    assert_eq!(reasons.len(), 3, "{stdout}");
    for words in ["empty (N bytes)", "truncated", "not a supported image"] {
        assert!(
            reasons
                .iter()
                .any(|r| r.contains(words) && r.ends_with(",1")),
            "'{words}' in {stdout}"
        );
    }
}

#[test]
fn params_must_be_given_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.sql");
    std::fs::write(&file, "SELECT '${greeting:-hello}' AS g, ${n} + 1 AS m;").unwrap();

    let (stdout, stderr, ok) = run_clip_sql_with(&file, &["--param", "n=41"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("hello,42"), "{stdout}");

    let (_, stderr, ok) = run_clip_sql_with(&file, &[]);
    assert!(!ok);
    assert!(stderr.contains("--param n="), "{stderr}");

    let (stdout, stderr, ok) =
        run_clip_sql_with(&file, &["--param", "n=1", "--param", "greting=hi"]);
    assert!(!ok);
    assert!(stderr.contains("--param greting is not used"), "{stderr}");
    assert!(stdout.is_empty(), "nothing runs: {stdout}");
}
