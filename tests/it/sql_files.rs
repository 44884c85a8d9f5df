//! The shipped example SQL files and `--param`, run offline by `clip-sql`,
//! and a script that calls every function through the binary. (The
//! benchmark files: tests/benchmark_files.rs.)

use std::process::Command;

use crate::common::*;

fn run_clip_sql(file: &std::path::Path) -> (String, String, bool) {
    run_clip_sql_with(file, &[])
}

fn run_clip_sql_with(file: &std::path::Path, extra: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_clip-sql"))
        .current_dir(crate::common::repo())
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
    let file = std::path::Path::new(crate::common::repo()).join("sql/examples/bad_images.sql");
    let data = format!("data={}/", images.path().display());
    let model = format!("model={}", tiny_model());
    let (stdout, stderr, ok) = run_clip_sql_with(&file, &["--param", &data, "--param", &model]);
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
