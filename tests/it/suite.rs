//! `clip-sql suite` on stand-in shards with two tiny models: predictions
//! Parquet, the report's tables, CLIP_benchmark JSON and charts; and the
//! report's SQL checked exactly on predictions made up here.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
use clip_model::ClipConfig;
use clip_model::checkpoint::write_random_model;

const DATASETS: [&str; 3] = ["cifar10", "country211", "renderedsst2"];

fn suite(out: &Path, models: &str, data: &[String], extra: &[&str]) -> Output {
    run_suite(out, models, &DATASETS.join(","), data, extra)
}

/// The rows of a CSV file the suite wrote (no quoting in these tables).
fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_writes_predictions_tables_json_and_charts() {
    let work = tempfile::tempdir().unwrap();
    let second = work.path().join("tiny-b");
    write_random_model(&second, &ClipConfig::tiny(), 1234).unwrap();
    let (a, b) = (tiny_model(), second.display().to_string());
    let data: Vec<String> = DATASETS
        .iter()
        .map(|slug| {
            let dir = work.path().join(slug);
            standin_shards(&dir, class_count(slug));
            format!("{slug}={}/", dir.display())
        })
        .collect();
    let out = work.path().join("results");
    let models = format!("{a},{b}");
    let ensemble = format!("{a}=0.6,{b}=0.4");
    let run = suite(&out, &models, &data, &["--ensemble", &ensemble]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");

    // Every prediction, in the documented shape.
    let predictions = files(&out.join("predictions"), "parquet");
    assert_eq!(predictions.len(), 6, "{predictions:?}");
    let ctx = context();
    ctx.register_parquet(
        "predictions",
        out.join("predictions").to_str().unwrap(),
        Default::default(),
    )
    .await
    .unwrap();
    let rows = table_rows(
        &query_text(
            &ctx,
            "SELECT dataset, count(*), count(DISTINCT model), count(predicted), \
                    min(cardinality(top5)), min(label_index), max(label_index) \
             FROM predictions GROUP BY dataset ORDER BY dataset",
        )
        .await,
    );
    assert_eq!(
        rows,
        [
            ["cifar10", "12", "2", "12", "5", "0", "9"],
            ["country211", "12", "2", "12", "5", "0", "210"],
            ["renderedsst2", "12", "2", "12", "2", "0", "1"],
        ]
    );
    let schema = ctx
        .read_parquet(predictions[0].to_str().unwrap(), Default::default())
        .await
        .unwrap()
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect::<Vec<_>>();
    assert_eq!(
        schema,
        [
            "model",
            "dataset",
            "split",
            "key",
            "label",
            "label_index",
            "predicted",
            "predicted_label",
            "top5",
            "probability",
            "predicted_one_template"
        ]
    );
    // Class names come from sql/data: Andorra is Country211's class 0.
    let andorra = table_rows(
        &query_text(
            &ctx,
            "SELECT DISTINCT label FROM predictions \
             WHERE dataset = 'country211' AND label_index = 0",
        )
        .await,
    );
    assert_eq!(andorra, [["Andorra"]]);

    // The tables, printed and saved.
    let accuracy = csv_rows(&out.join("tables/accuracy.csv"));
    assert_eq!(
        accuracy[0],
        [
            "model",
            "dataset",
            "task",
            "split",
            "n",
            "n_failed",
            "acc1",
            "acc5",
            "mean_per_class_recall",
            "published_acc1",
            "difference"
        ]
    );
    assert_eq!(accuracy.len(), 1 + 6);
    for row in &accuracy[1..] {
        assert_eq!(&row[3..6], ["test", "6", "0"], "{row:?}");
        // Two classes: acc5 would always be 100, so it is left out.
        assert_eq!(row[7].is_empty(), row[1] == "renderedsst2", "{row:?}");
    }
    let tasks: Vec<String> = csv_rows(&out.join("tables/accuracy_by_task.csv"))[1..]
        .iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(
        tasks,
        [
            "general objects",
            "general objects",
            "geolocation",
            "geolocation"
        ]
        .into_iter()
        .chain(["text and sentiment"; 2])
        .collect::<Vec<_>>()
    );
    for table in [
        "accuracy_by_task",
        "country211_by_region",
        "renderedsst2_by_class",
        "template_ensembling",
        "ensemble",
        "accuracy_matrix",
    ] {
        let rows = csv_rows(&out.join(format!("tables/{table}.csv")));
        assert!(rows.len() > 1, "{table} is empty");
    }
    let ensemble_rows = csv_rows(&out.join("tables/ensemble.csv"));
    assert_eq!(ensemble_rows.len(), 1 + 3 * 3, "{ensemble_rows:?}");
    assert_eq!(
        ensemble_rows
            .iter()
            .filter(|r| r[1] == "ensemble" && r[2] == "1.0" && r[3] == "6")
            .count(),
        3
    );
    // Models are shown by their directory's name, datasets by task group.
    let matrix = csv_rows(&out.join("tables/accuracy_matrix.csv"));
    assert_eq!(matrix[0], ["task", "dataset", "tiny-clip", "tiny-b"]);
    assert_eq!(
        matrix[1..]
            .iter()
            .map(|r| (r[0].as_str(), r[1].as_str()))
            .collect::<Vec<_>>(),
        [
            ("general objects", "cifar10"),
            ("geolocation", "country211"),
            ("text and sentiment", "renderedsst2"),
            ("", "mean")
        ]
    );
    for heading in [
        "Accuracy by model and dataset",
        "Country211 accuracy by model and region",
        "Rendered SST2 accuracy by sentiment class",
        "One template ('a photo of a {}.')",
        "The ensemble's accuracy next to each member's",
        "Top-1 accuracy (percent) by dataset and model",
        "Accuracy by model and task group",
    ] {
        assert!(stdout.contains(heading), "no '{heading}' in {stdout}");
    }

    // CLIP_benchmark's result files.
    let json = files(&out.join("clip_benchmark"), "json");
    assert_eq!(json.len(), 6);
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json[0]).unwrap()).unwrap();
    assert_eq!(document["task"], "zeroshot_classification");
    assert_eq!(document["pretrained"], "local");
    let acc1 = document["metrics"]["acc1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc1));
    assert!(
        json.iter().any(|p| p
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("vtab_cifar10_local_")),
        "{json:?}"
    );

    // Every chart, in both formats.
    for chart in [
        "accuracy_by_model_and_dataset",
        "accuracy_by_task",
        "parameters_vs_accuracy",
        "ensemble_by_dataset",
        "country211_by_region",
    ] {
        let svg = std::fs::read_to_string(out.join(format!("charts/{chart}.svg"))).unwrap();
        assert!(svg.contains("<svg"), "{chart}");
        let png = image::open(out.join(format!("charts/{chart}.png"))).unwrap();
        assert!(png.width() > 500 && png.height() > 100, "{chart}");
    }
    let svg =
        std::fs::read_to_string(out.join("charts/accuracy_by_model_and_dataset.svg")).unwrap();
    for name in [
        "CIFAR-10",
        "Country211",
        "Rendered SST2",
        "tiny-clip",
        "tiny-b",
    ] {
        assert!(svg.contains(name), "no {name} in the chart");
    }
    assert!(!svg.contains(&a), "a whole model path in a legend");
    let svg = std::fs::read_to_string(out.join("charts/country211_by_region.svg")).unwrap();
    assert!(
        svg.contains(" images)"),
        "regions without their image counts"
    );
    assert!(!svg.contains("(1 images)"), "one image is 'image'");
    let svg = std::fs::read_to_string(out.join("charts/parameters_vs_accuracy.svg")).unwrap();
    for point in ["tiny-clip", "tiny-b", "RN50", "ViT-L/14@336px", "RN50x64"] {
        assert!(svg.contains(point), "no {point} on the scatter");
    }

    // The page, and its Markdown twin: every table and chart on it.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    for table in [
        "models",
        "accuracy",
        "accuracy_by_task",
        "country211_by_region",
        "renderedsst2_by_class",
        "template_ensembling",
        "ensemble",
        "accuracy_matrix",
    ] {
        assert!(
            html.contains(&format!("id=\"table-{table}\"")),
            "no {table} on the page"
        );
        assert!(
            markdown.contains(&format!("### {table}\n")),
            "no {table} in report.md"
        );
    }
    assert_eq!(html.matches("<svg").count(), 5, "five charts inline");
    for fetch in ["src=\"http", "href=\"http", "@import", "<script"] {
        assert!(!html.contains(fetch), "the page reaches out: {fetch}");
    }
    assert!(html.contains("<summary>SQL</summary>"));
    assert!(html.contains("CREATE TABLE accuracy_by_task AS"));

    // A second suite into the same directory: refused, then resumed.
    let again = suite(&out, &models, &data, &[]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--resume"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let resumed = suite(&out, &models, &data, &["--resume", "--ensemble", &ensemble]);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert_eq!(stderr.matches("kept from before").count(), 6, "{stderr}");
    assert_eq!(csv_rows(&out.join("tables/accuracy.csv")), accuracy);
}

/// A folder with CIFAR-10 stand-in shards: (the folder, its results
/// directory, the `--data` for them, `small=<the tiny model>`).
fn small_cifar10_suite() -> (tempfile::TempDir, std::path::PathBuf, [String; 1], String) {
    let work = tempfile::tempdir().unwrap();
    let shards = work.path().join("cifar10");
    standin_shards(&shards, class_count("cifar10"));
    let out = work.path().join("results");
    let data = [format!("cifar10={}/", shards.display())];
    (work, out, data, format!("small={}", tiny_model()))
}

#[test]
fn a_labelled_model_is_named_by_its_label_everywhere() {
    let (work, out, data, models) = small_cifar10_suite();
    let run = run_suite(&out, &models, "cifar10", &data, &["--ensemble", "small=1"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(out.join("predictions/cifar10__small.parquet").is_file());
    let accuracy = csv_rows(&out.join("tables/accuracy.csv"));
    assert_eq!(accuracy[1][0], "small");
    assert_eq!(
        csv_rows(&out.join("tables/accuracy_matrix.csv"))[0][2],
        "small"
    );
    // Its size comes from its source, so it is on the scatter.
    let svg = std::fs::read_to_string(out.join("charts/parameters_vs_accuracy.svg")).unwrap();
    assert!(svg.contains("small "), "no labelled model on the scatter");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains(&format!("small ({})", tiny_model())),
        "the page hides the source"
    );

    // Labels are checked before anything runs.
    for models in ["=x", "a=", "a,a"] {
        let run = run_suite(&work.path().join("r2"), models, "cifar10", &data, &[]);
        assert!(!run.status.success(), "{models}");
        assert!(
            String::from_utf8_lossy(&run.stderr).contains("--models"),
            "{models}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
}

#[test]
fn the_suite_checks_its_arguments_before_running_anything() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("results");
    let cases: [(&[&str], &str); 5] = [
        (&["--datasets", "cifar11"], "unknown dataset 'cifar11'"),
        (&["--datasets", "food101"], "pass --data food101="),
        (
            &["--datasets", "cifar10", "--data", "mnist=/x/"],
            "mnist is not in --datasets",
        ),
        (&["--models", ""], "names no model"),
        (
            &["--datasets", "cifar10", "--efficiency", "/no/such/bench"],
            "--efficiency /no/such/bench: no efficiency.csv there (clip-sql bench --output",
        ),
    ];
    for (args, message) in cases {
        let out = out.display().to_string();
        let mut all = vec!["suite", "--out", &out];
        all.extend(args);
        let run = clip_sql(&all);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert!(!out.exists(), "nothing is written before the checks pass");
}

/// Write `select` (over VALUES) as `<results>/<dir>/<name>.parquet`.
async fn write_table(
    ctx: &datafusion::prelude::SessionContext,
    results: &Path,
    dir: &str,
    name: &str,
    select: &str,
) {
    let path = results.join(dir).join(format!("{name}.parquet"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    query(ctx, &format!("COPY ({select}) TO '{}'", path.display()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_sql_gives_hand_computed_values() {
    let work = tempfile::tempdir().unwrap();
    let results = work.path();
    let ctx = context();
    let predictions = |rows: &str| {
        format!(
            "SELECT model, dataset, 'test' AS split, key, label, CAST(label_index AS INT) AS label_index, \
                    CAST(predicted AS INT) AS predicted, CAST(NULL AS VARCHAR) AS predicted_label, \
                    CAST(top5 AS INT[]) AS top5, CAST(0.5 AS FLOAT) AS probability, \
                    CAST(predicted_one_template AS INT) AS predicted_one_template \
             FROM (VALUES {rows}) AS t(model, dataset, key, label, label_index, predicted, top5, \
                                       predicted_one_template)"
        )
    };
    // Rendered SST2, model a: negative right, right, wrong; positive wrong,
    // not decoded. One template: right, wrong, right, right, not decoded.
    write_table(
        &ctx,
        results,
        "predictions",
        "renderedsst2__a",
        &predictions(
            "('a', 'renderedsst2', 'k0', 'negative', 0, 0, [0, 1], 0),
             ('a', 'renderedsst2', 'k1', 'negative', 0, 0, [0, 1], 1),
             ('a', 'renderedsst2', 'k2', 'negative', 0, 1, [1, 0], 0),
             ('a', 'renderedsst2', 'k3', 'positive', 1, 0, [0, 1], 1),
             ('a', 'renderedsst2', 'k4', 'positive', 1, NULL, NULL, NULL)",
        ),
    )
    .await;
    // Country211, model a: Andorra (0) is Europe, the United Arab Emirates
    // (1) the Middle East, Afghanistan (2) South Asia.
    write_table(
        &ctx,
        results,
        "predictions",
        "country211__a",
        &predictions(
            "('a', 'country211', 'c0', 'Andorra', 0, 0, [0, 1, 2, 3, 4], 0),
             ('a', 'country211', 'c1', 'Andorra', 0, 5, [5, 6, 7, 8, 9], 5),
             ('a', 'country211', 'c2', 'United Arab Emirates', 1, 1, [1, 2, 3, 4, 5], 1),
             ('a', 'country211', 'c3', 'Afghanistan', 2, 9, [9, 2, 3, 4, 5], 9),
             ('a', 'country211', 'c4', 'Afghanistan', 2, 2, [2, 3, 4, 5, 6], 2),
             ('a', 'country211', 'c5', 'Afghanistan', 2, 2, [2, 3, 4, 5, 6], 2)",
        ),
    )
    .await;
    // RN50 (a published model) on Country211: one image, right. Its
    // published figure is 15.42.
    write_table(
        &ctx,
        results,
        "predictions",
        "country211__RN50",
        &predictions("('RN50', 'country211', 'c0', 'Andorra', 0, 0, [0, 1, 2, 3, 4], 0)"),
    )
    .await;
    // Probabilities of two models; weights a 0.75, b 0.25.
    //   k0 (0): a [.6 .4], b [0 1]   -> [.45 .55]: 1, wrong (a right, b wrong)
    //   k1 (0): a [.5 .5], b [.5 .5] -> a tie: the first class, right (both right)
    //   k2 (1): a [.7 .3], b [.1 .9] -> [.55 .45]: 0, wrong (a wrong, b right)
    //   k3 (1): a not decoded, b [.2 .8] -> no ensemble prediction (b right)
    // Country211 has only model a: no ensemble for it.
    let probabilities = |rows: &str| {
        format!(
            "SELECT model, dataset, key, CAST(label_index AS INT) AS label_index, \
                    CAST(probs AS FLOAT[]) AS probs \
             FROM (VALUES {rows}) AS t(model, dataset, key, label_index, probs)"
        )
    };
    write_table(
        &ctx,
        results,
        "probabilities",
        "renderedsst2__a",
        &probabilities(
            "('a', 'renderedsst2', 'k0', 0, [0.6, 0.4]),
             ('a', 'renderedsst2', 'k1', 0, [0.5, 0.5]),
             ('a', 'renderedsst2', 'k2', 1, [0.7, 0.3]),
             ('a', 'renderedsst2', 'k3', 1, NULL)",
        ),
    )
    .await;
    write_table(
        &ctx,
        results,
        "probabilities",
        "renderedsst2__b",
        &probabilities(
            "('b', 'renderedsst2', 'k0', 0, [0.0, 1.0]),
             ('b', 'renderedsst2', 'k1', 0, [0.5, 0.5]),
             ('b', 'renderedsst2', 'k2', 1, [0.1, 0.9]),
             ('b', 'renderedsst2', 'k3', 1, [0.2, 0.8])",
        ),
    )
    .await;
    write_table(
        &ctx,
        results,
        "probabilities",
        "country211__a",
        &probabilities("('a', 'country211', 'c0', 0, [0.9, 0.1])"),
    )
    .await;

    let run = clip_sql(&[
        "-q",
        "-f",
        &format!("{ROOT}/sql/benchmarks/report.sql"),
        "--param",
        &format!("results={}", results.display()),
        "--param",
        &format!("sqldata={ROOT}/sql/data"),
        "--param",
        "ensemble=a=0.75, b=0.25",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table = |name: &str| csv_rows(&results.join(format!("tables/{name}.csv")));
    // The tables of model a only (RN50 ran Country211 alone).
    let of_a = |name: &str| -> Vec<Vec<String>> {
        table(name)[1..]
            .iter()
            .filter(|r| r.iter().any(|c| c == "a" || c == "b" || c == "ensemble"))
            .cloned()
            .collect()
    };

    // acc1 2/5 (the undecoded image counts as wrong); recall 2/3 and 0/2;
    // acc5 left out for two classes. Country211: acc1 4/6, acc5 5/6. RN50:
    // 100 against its published 15.42.
    let row = |cells: &[&str]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(
        table("accuracy")[1..],
        [
            row(&[
                "RN50",
                "country211",
                "geolocation",
                "test",
                "1",
                "0",
                "100.0",
                "100.0",
                "100.0",
                "15.42",
                "84.58"
            ]),
            row(&[
                "a",
                "country211",
                "geolocation",
                "test",
                "6",
                "0",
                "66.67",
                "83.33",
                "72.22",
                "",
                ""
            ]),
            row(&[
                "a",
                "renderedsst2",
                "text and sentiment",
                "test",
                "5",
                "1",
                "40.0",
                "",
                "33.33",
                "",
                ""
            ]),
        ]
    );
    // By task group: one dataset each; the published mean only where a
    // figure exists.
    assert_eq!(
        table("accuracy_by_task")[1..],
        [
            row(&["RN50", "geolocation", "1", "100.0", "1", "15.42"]),
            row(&["a", "geolocation", "1", "66.67", "0", ""]),
            row(&["a", "text and sentiment", "1", "40.0", "0", ""]),
        ]
    );
    assert_eq!(
        of_a("country211_by_region"),
        [
            ["a", "Middle East", "1", "100.0"],
            ["a", "South Asia", "3", "66.67"],
            ["a", "Europe", "2", "50.0"],
        ]
    );
    assert_eq!(
        of_a("renderedsst2_by_class"),
        [
            ["a", "negative", "3", "66.67"],
            ["a", "positive", "2", "0.0"]
        ]
    );
    assert_eq!(
        of_a("template_ensembling"),
        [
            ["a", "country211", "6", "66.67", "66.67", "0.0"],
            ["a", "renderedsst2", "5", "60.0", "40.0", "-20.0"],
        ]
    );
    assert_eq!(
        of_a("ensemble"),
        [
            ["renderedsst2", "a", "0.75", "4", "50.0"],
            ["renderedsst2", "b", "0.25", "4", "75.0"],
            ["renderedsst2", "ensemble", "1.0", "4", "25.0"],
        ]
    );
}

#[test]
fn a_failed_run_is_reported_and_never_replaced_by_an_earlier_result() {
    let work = tempfile::tempdir().unwrap();
    let (cifar10, mnist) = (work.path().join("cifar10"), work.path().join("mnist"));
    standin_shards(&cifar10, class_count("cifar10"));
    standin_shards(&mnist, class_count("mnist"));
    let out = work.path().join("results");
    let run = |mnist_data: &Path, extra: &[&str]| {
        let data = [
            format!("cifar10={}/", cifar10.display()),
            format!("mnist={}/", mnist_data.display()),
        ];
        run_suite(&out, &tiny_model(), "cifar10,mnist", &data, extra)
    };
    let first = run(&mnist, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let datasets =
        |rows: Vec<Vec<String>>| rows[1..].iter().map(|r| r[1].clone()).collect::<Vec<_>>();
    assert_eq!(
        datasets(csv_rows(&out.join("tables/accuracy.csv"))),
        ["cifar10", "mnist"]
    );

    // MNIST's shards are gone: its run fails, CIFAR-10's still reports,
    // and the first suite's MNIST figures do not stand in for the failure.
    let again = run(&work.path().join("gone"), &["--overwrite"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(stderr.contains("1 of 2 runs failed (mnist × "), "{stderr}");
    assert_eq!(
        datasets(csv_rows(&out.join("tables/accuracy.csv"))),
        ["cifar10"]
    );
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert!(
        runs.lines()
            .any(|l| l.contains(",mnist,,") && l.contains(",failed,")),
        "{runs}"
    );
}

/// `--resume` keeps a run only when this suite would make it the same way:
/// a quick look with `--limit` then the whole suite with `--resume` is
/// refused before anything runs, naming the run and the setting.
#[test]
fn resuming_keeps_only_runs_made_as_this_suite_would_make_them() {
    let (work, out, data, models) = small_cifar10_suite();
    let stderr = |run: &std::process::Output| String::from_utf8_lossy(&run.stderr).into_owned();
    let quick = run_suite(
        &out,
        &models,
        "cifar10",
        &data,
        &["--limit", "3", "--ensemble", "small=1"],
    );
    assert!(quick.status.success(), "{}", stderr(&quick));
    let record = std::fs::read_to_string(out.join("runs/cifar10__small.json")).unwrap();
    assert!(record.contains("3 images per run"), "{record}");

    let whole = run_suite(
        &out,
        &models,
        "cifar10",
        &data,
        &["--resume", "--ensemble", "small=1"],
    );
    assert!(!whole.status.success());
    assert!(
        stderr(&whole).contains("--resume would keep cifar10 × small from")
            && stderr(&whole).contains(
                "made with limit = 3 images per run, but this suite asks for limit = none (every \
             test image)"
            ),
        "{}",
        stderr(&whole)
    );
    assert!(
        !stderr(&whole).contains("[1/1]"),
        "it ran: {}",
        stderr(&whole)
    );
    let elsewhere = run_suite(
        &out,
        &format!("small={}", work.path().join("other").display()),
        "cifar10",
        &data,
        &["--resume", "--limit", "3", "--ensemble", "small=1"],
    );
    assert!(
        stderr(&elsewhere).contains("made with model = "),
        "{}",
        stderr(&elsewhere)
    );

    let same = run_suite(
        &out,
        &models,
        "cifar10",
        &data,
        &["--resume", "--limit", "3", "--ensemble", "small=1"],
    );
    assert!(same.status.success(), "{}", stderr(&same));
    assert!(
        stderr(&same).contains("kept from before"),
        "{}",
        stderr(&same)
    );
}
