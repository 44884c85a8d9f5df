//! The `clip-sql` binary: `-c`, `-f`, settings, exit codes.

mod common;

use std::process::{Command, Output};

use common::*;

fn clip_sql(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clip-sql"))
        .args(args)
        // Never reach for the network from tests.
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("clip-sql runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn command_prints_a_text_embedding() {
    let sql = format!(
        "SELECT clip_embed_text('{}', 'a photo of a cat') AS e",
        tiny_model()
    );
    let out = clip_sql(&["-q", "--format", "json", "-c", &sql]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(stdout(&out).trim()).expect("JSON output");
    let e: Vec<f64> = rows[0]["e"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(e.len(), TINY_DIM);
    let norm: f64 = e.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    assert!(
        !stderr(&out).contains("[clip]"),
        "no progress line when stderr is not a terminal"
    );
}

#[test]
fn file_runs_zero_shot_over_an_image_folder_and_groups_by_label() {
    let images = pets_folder();
    let model = tiny_model();
    let script = format!(
        "-- ad hoc zero-shot over a folder
CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{dir}';
SET clip.batch_size = 2;
SELECT path, clip_zero_shot('{model}', image, ['cat', 'dog'])['label'] AS predicted FROM pets ORDER BY path;
SELECT label, avg(CASE WHEN clip_zero_shot('{model}', image, ['cat', 'dog'])['label'] = label THEN 1.0 ELSE 0.0 END) AS acc1,
       count(*) AS n
FROM pets GROUP BY label ORDER BY label;
",
        dir = images.path().display()
    );
    let sql_dir = tempfile::tempdir().unwrap();
    let file = sql_dir.path().join("pets.sql");
    std::fs::write(&file, script).unwrap();
    let out = clip_sql(&["-q", "--format", "csv", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    // One prediction per image, then one accuracy row per label.
    let predictions: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(".png,") || l.contains(".jpg,") || l.contains(".jpeg,"))
        .collect();
    assert_eq!(predictions.len(), 5, "{text}");
    assert!(
        predictions
            .iter()
            .all(|l| l.ends_with(",cat") || l.ends_with(",dog")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("cat,") && l.ends_with(",3")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("dog,") && l.ends_with(",2")),
        "{text}"
    );
}

#[test]
fn a_failing_statement_in_a_file_fails_the_run() {
    let sql_dir = tempfile::tempdir().unwrap();
    let file = sql_dir.path().join("broken.sql");
    std::fs::write(
        &file,
        "SELECT 1;\nSELECT clip_embed_text('no-such-model', 'x');\nSELECT 2;\n",
    )
    .unwrap();
    let out = clip_sql(&["-q", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unknown model 'no-such-model'"), "{err}");
    assert!(err.contains("broken.sql"), "{err}");
}

#[test]
fn settings_work_from_the_command_line() {
    let out = clip_sql(&[
        "-q",
        "--format",
        "csv",
        "-c",
        "SET clip.batch_size = 3",
        "-c",
        "SELECT value FROM information_schema.df_settings WHERE name = 'clip.batch_size'",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).lines().any(|l| l == "3"), "{}", stdout(&out));
    let out = clip_sql(&["-q", "-c", "SET clip.dtype = 'f8'"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("clip.dtype must be"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_sql_file_is_reported() {
    let out = clip_sql(&["-f", "/no/such/file.sql"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no such SQL file"),
        "{}",
        stderr(&out)
    );
}
