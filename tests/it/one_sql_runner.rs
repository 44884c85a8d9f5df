//! One SQL runner (`clip_sql::sql_runner`): every file of `sql/benchmarks/`
//! gives the same tables run by the shell (`clip-sql -f`) as run by
//! `clip-sql suite`: each benchmark file's predictions (or retrieval
//! tables), and the report files' tables over the suite's saved runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;

/// The rows of a Parquet or CSV file, each as one line of text, sorted:
/// the same rows give the same list whatever order they were written in.
async fn sorted_rows(file: &Path) -> Vec<String> {
    let ctx = context();
    let location = file.display().to_string();
    let frame = if location.ends_with(".csv") {
        ctx.read_csv(&location, Default::default()).await.unwrap()
    } else {
        ctx.read_parquet(&location, Default::default())
            .await
            .unwrap()
    };
    let batches = frame.collect().await.unwrap();
    let mut rows = Vec::new();
    for batch in &batches {
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = batch
                .columns()
                .iter()
                .map(|c| datafusion::arrow::util::display::array_value_to_string(c, row).unwrap())
                .collect();
            rows.push(cells.join(" | "));
        }
    }
    rows.sort();
    rows
}

/// The one file in `dir` whose name starts with `prefix`.
fn file_starting(dir: &Path, prefix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "{prefix}* in {}: {found:?}", dir.display());
    found[0].clone()
}

fn run_shell(args: &[String]) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = clip_sql(&args);
    assert!(
        out.status.success(),
        "clip-sql {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_benchmark_file_gives_the_same_tables_through_the_shell_and_the_suite() {
    let work = tempfile::tempdir().unwrap();
    let model = tiny_model();
    let sqldata = format!("{ROOT}/sql/data");
    let from_shell = work.path().join("shell");
    std::fs::create_dir_all(&from_shell).unwrap();

    // Each benchmark file through the shell, its tables saved as the
    // suite saves them (the same columns).
    let classification = benchmark_datasets();
    let retrieval = retrieval_datasets();
    let mut data = Vec::new();
    for slug in classification.iter().chain(&retrieval) {
        let shards = work.path().join("data").join(slug);
        let copies = if retrieval.contains(slug) {
            retrieval_standin(&shards);
            ["image_retrieval", "text_retrieval"]
                .map(|kind| {
                    format!(
                        "COPY {slug}_{kind} TO '{}/{slug}_{kind}.parquet'",
                        from_shell.display()
                    )
                })
                .join("; ")
        } else {
            standin_shards(&shards, class_count(slug));
            let p = format!("{slug}_predictions");
            format!(
                "COPY (SELECT model, dataset, split, key, label, label_index, predicted, \
                 predicted_label, top5, probability, predicted_one_template FROM {p}) \
                 TO '{dir}/{slug}_predictions.parquet'; \
                 COPY (SELECT model, dataset, key, label_index, probs FROM {p}) \
                 TO '{dir}/{slug}_probabilities.parquet'",
                dir = from_shell.display()
            )
        };
        let shards = format!("{}/", shards.display());
        let mut args: Vec<String> = vec![
            "-q".into(),
            "-f".into(),
            format!("{ROOT}/sql/benchmarks/{slug}.sql"),
            "--param".into(),
            format!("model={model}"),
            "--param".into(),
            format!("data={shards}"),
            "-c".into(),
            copies,
        ];
        // Retrieval files read no class names or templates.
        if !retrieval.contains(slug) {
            args.extend(["--param".into(), format!("sqldata={sqldata}")]);
        }
        run_shell(&args);
        data.push(format!("{slug}={shards}"));
    }

    // The same files through the suite, with an efficiency table so that
    // every report file runs.
    let bench = work.path().join("bench");
    std::fs::create_dir_all(&bench).unwrap();
    std::fs::write(
        bench.join("efficiency.csv"),
        format!(
            "model,device,dtype,image_size,load_s,latency_ms,batch,images_per_s,note,\
             prompts_per_s,peak_device_bytes,peak_host_bytes\n\
             {model},cpu,f32,32,0.1,2.5,1,400.0,,900.0,0,1000000\n\
             {model},cpu,f32,32,0.1,2.5,32,1000.0,,900.0,0,2000000\n"
        ),
    )
    .unwrap();
    let out = work.path().join("suite");
    let all: Vec<String> = classification.iter().chain(&retrieval).cloned().collect();
    let suite = run_suite(
        &out,
        &model,
        &all.join(","),
        &data,
        &["--efficiency", bench.to_str().unwrap()],
    );
    assert!(
        suite.status.success(),
        "{}",
        String::from_utf8_lossy(&suite.stderr)
    );

    for slug in &classification {
        for kind in ["predictions", "probabilities"] {
            let shell = sorted_rows(&from_shell.join(format!("{slug}_{kind}.parquet"))).await;
            let saved = sorted_rows(&file_starting(&out.join(kind), &format!("{slug}__"))).await;
            assert_eq!(shell.len(), 6, "{slug} {kind}");
            assert_eq!(shell, saved, "{slug}: {kind} differ");
        }
    }
    for slug in &retrieval {
        for kind in ["image_retrieval", "text_retrieval"] {
            let shell = sorted_rows(&from_shell.join(format!("{slug}_{kind}.parquet"))).await;
            let saved = sorted_rows(&file_starting(&out.join(kind), &format!("{slug}__"))).await;
            assert!(!shell.is_empty(), "{slug} {kind}");
            assert_eq!(shell, saved, "{slug}: {kind} differ");
        }
    }

    // The report files through the shell, over a copy of the suite's
    // saved runs: the tables they write are the suite's report's.
    let again = work.path().join("report_by_shell");
    for folder in [
        "predictions",
        "probabilities",
        "image_retrieval",
        "text_retrieval",
    ] {
        std::fs::create_dir_all(again.join(folder)).unwrap();
        for file in std::fs::read_dir(out.join(folder)).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, again.join(folder).join(file.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir_all(again.join("tables")).unwrap();
    let ensemble = format!("{model}=1");
    let params: BTreeMap<&str, String> = BTreeMap::from([
        ("results", again.display().to_string()),
        ("sqldata", sqldata.clone()),
        ("benchmarks", format!("{ROOT}/sql/benchmarks")),
        ("efficiency", bench.display().to_string()),
        ("ensemble", ensemble.clone()),
    ]);
    let mut args: Vec<String> = vec!["-q".into()];
    for file in [
        "report.sql",
        "report_efficiency.sql",
        "report_retrieval.sql",
    ] {
        args.extend(["-f".into(), format!("{ROOT}/sql/benchmarks/{file}")]);
    }
    for (name, value) in &params {
        args.extend(["--param".into(), format!("{name}={value}")]);
    }
    // The suite's report ran with the article's ensemble weights: rebuild
    // it with this one's, which the shell used too.
    let rebuilt = clip_sql(&[
        "report",
        "--results",
        out.to_str().unwrap(),
        "--benchmarks",
        &format!("{ROOT}/sql/benchmarks"),
        "--sqldata",
        &sqldata,
        "--efficiency",
        bench.to_str().unwrap(),
        "--ensemble",
        &ensemble,
    ]);
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    run_shell(&args);
    let mut compared = 0;
    for table in std::fs::read_dir(again.join("tables")).unwrap() {
        let table = table.unwrap().path();
        let name = table.file_name().unwrap().to_string_lossy().into_owned();
        let shell = sorted_rows(&table).await;
        let saved = sorted_rows(&out.join("tables").join(&name)).await;
        assert_eq!(shell, saved, "tables/{name} differ");
        compared += 1;
    }
    // accuracy, accuracy_by_task, country211_by_region,
    // renderedsst2_by_class, template_ensembling, ensemble, efficiency,
    // retrieval, retrieval_vs_published.
    assert_eq!(compared, 9, "report tables compared");
}
