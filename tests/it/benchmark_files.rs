//! The benchmark files `sql/benchmarks/<dataset>.sql`: each runs through
//! `clip-sql` on local stand-in shards with the tiny model, and their
//! metric SQL gives hand-computed values on predictions made up here.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::common::*;
use clip_sql::sql_params::substitute;

fn benchmark_files() -> Vec<(String, PathBuf)> {
    benchmark_datasets()
        .into_iter()
        .map(|slug| {
            let path = PathBuf::from(format!("{ROOT}/sql/benchmarks/{slug}.sql"));
            (slug, path)
        })
        .collect()
}

#[test]
fn the_seeds_datasets_all_have_a_benchmark_file() {
    let slugs: Vec<String> = benchmark_files().into_iter().map(|(s, _)| s).collect();
    for wanted in [
        "cifar10",
        "cifar100",
        "imagenet1k",
        "food101",
        "cars",
        "fgvc_aircraft",
        "birdsnap",
        "sun397",
        "country211",
        "renderedsst2",
        "fer2013",
        "dtd",
        "eurosat",
        "resisc45",
        "mnist",
        "stl10",
        "pets",
    ] {
        assert!(
            slugs.iter().any(|s| s == wanted),
            "no sql/benchmarks/{wanted}.sql"
        );
    }
}

#[test]
fn every_benchmark_file_runs_on_stand_in_shards() {
    let work = tempfile::tempdir().unwrap();
    let model = format!("model={}", tiny_model());
    let sqldata = format!("sqldata={ROOT}/sql/data");
    for (slug, file) in benchmark_files() {
        let shards = work.path().join(&slug);
        standin_shards(&shards, class_count(&slug));
        let data = format!("data={}/", shards.display());
        let out = Command::new(env!("CARGO_BIN_EXE_clip-sql"))
            .current_dir(crate::common::repo())
            .args(["-q", "--format", "csv", "-f", file.to_str().unwrap()])
            .args(["--param", &data, "--param", &model, "--param", &sqldata])
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{slug}: {stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        let at = lines
            .iter()
            .position(|l| *l == "model,dataset,split,n,n_failed,acc1,acc5,mean_per_class_recall")
            .unwrap_or_else(|| panic!("{slug}: no summary in {stdout}"));
        let cells: Vec<&str> = lines[at + 1].split(',').collect();
        assert_eq!(
            &cells[1..5],
            [slug.as_str(), "test", "6", "0"],
            "{slug}: {stdout}"
        );
        for (i, metric) in cells.iter().enumerate().take(8).skip(5) {
            // acc5 is NULL (an empty CSV cell) with fewer than 5 classes.
            if i == 6 && class_count(&slug) < 5 {
                assert_eq!(*metric, "", "{slug}: {stdout}");
                continue;
            }
            let v: f64 = metric.parse().unwrap();
            assert!((0.0..=100.0).contains(&v), "{slug}: {stdout}");
        }
        if slug == "country211" {
            assert!(lines.contains(&"model,region,n,acc1"), "{stdout}");
        }
    }
}

/// The statement of `file` that contains `marker`, placeholders filled.
fn statement(file: &str, marker: &str) -> String {
    let text = std::fs::read_to_string(format!("{ROOT}/sql/benchmarks/{file}")).unwrap();
    let params = [("sqldata".to_string(), format!("{ROOT}/sql/data"))]
        .into_iter()
        .collect();
    let text = substitute(&text, &params, &mut BTreeSet::new()).unwrap();
    text.split(";\n")
        .find(|s| s.contains(marker))
        .unwrap_or_else(|| panic!("no statement with {marker} in {file}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_hand_computed_values() {
    let ctx = context();
    // label, predicted, top5: right; wrong but in the top 5; not decoded;
    // right; wrong and not in the top 5.
    query(
        &ctx,
        "CREATE TABLE cifar10_predictions AS SELECT * FROM (VALUES
           ('m', 'cifar10', 'a', 0, 0,    [0, 1, 2, 3, 4], 0.9),
           ('m', 'cifar10', 'b', 0, 1,    [1, 0, 2, 3, 4], 0.5),
           ('m', 'cifar10', 'c', 0, NULL, NULL,            NULL),
           ('m', 'cifar10', 'd', 1, 1,    [1, 2, 3, 4, 5], 0.7),
           ('m', 'cifar10', 'e', 2, 3,    [3, 4, 5, 6, 7], 0.4)
         ) AS t(model, dataset, key, label_index, predicted, top5, probability)
         CROSS JOIN (VALUES ('test')) AS s(split)",
    )
    .await
    .unwrap();
    query(
        &ctx,
        &statement("cifar10.sql", "CREATE EXTERNAL TABLE cifar10_classes"),
    )
    .await
    .unwrap();
    let summary = statement("cifar10.sql", "AS mean_per_class_recall");
    let rows = table_rows(&query_text(&ctx, &summary).await);
    // acc1 2/5; acc5 3/5; recall per class 1/3, 1/1, 0/1 -> mean 4/9.
    assert_eq!(
        rows[0],
        ["m", "cifar10", "test", "5", "1", "40.0", "60.0", "44.44"]
    );

    // Country211 by region: Andorra (0) is Europe, the United Arab Emirates
    // (1) the Middle East, Afghanistan (2) South Asia.
    query(
        &ctx,
        "CREATE TABLE country211_predictions AS SELECT * FROM (VALUES
           ('m', 0, 0), ('m', 0, 5), ('m', 1, 1), ('m', 2, 9), ('m', 2, 2), ('m', 2, 2)
         ) AS t(model, label_index, predicted)",
    )
    .await
    .unwrap();
    query(
        &ctx,
        &statement("country211.sql", "CREATE EXTERNAL TABLE country211_regions"),
    )
    .await
    .unwrap();
    let rows = table_rows(
        &query_text(
            &ctx,
            &statement("country211.sql", "GROUP BY p.model, r.region"),
        )
        .await,
    );
    assert_eq!(
        rows,
        [
            ["m", "Middle East", "1", "100.0"],
            ["m", "South Asia", "3", "66.67"],
            ["m", "Europe", "2", "50.0"],
        ]
    );
}
