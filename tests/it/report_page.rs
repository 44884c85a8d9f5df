//! The report on one page: the stand-in suite (two tiny models, every
//! dataset of the catalogue) writes report.html, which a real browser
//! (headless Chromium) renders with every table and chart and no console
//! error; `clip-sql report` with other ensemble weights rebuilds the
//! tables, the charts and the page.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use clip_model::ClipConfig;
use clip_model::checkpoint::write_random_model;

/// The report's tables (report.sql's queries and the accuracy matrix),
/// each a section of the page.
const TABLES: [&str; 9] = [
    "models",
    "retrieval",
    "accuracy",
    "accuracy_by_task",
    "country211_by_region",
    "renderedsst2_by_class",
    "template_ensembling",
    "ensemble",
    "accuracy_matrix",
];
const CHARTS: [&str; 5] = [
    "accuracy_by_model_and_dataset",
    "accuracy_by_task",
    "country211_by_region",
    "ensemble_by_dataset",
    "parameters_vs_accuracy",
];

/// Chromium from Debian's package (`.ci/run` installs it), or `$CHROMIUM`.
fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "no Chromium at {} for the report page test: `apt-get install chromium` \
         (as .ci/run does) or set CHROMIUM",
        path.display()
    );
    path
}

/// Run headless Chromium on `page` with `args`; (stdout, console lines).
fn headless(page: &Path, args: &[&str]) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--enable-logging=stderr",
            "--log-level=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|line| line.contains("CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

#[test]
fn the_report_page_renders_every_table_and_chart_and_follows_the_ensemble() {
    let work = tempfile::tempdir().unwrap();
    let second = work.path().join("tiny-b");
    write_random_model(&second, &ClipConfig::tiny(), 99).unwrap();
    let (a, b) = (tiny_model(), second.display().to_string());
    let datasets = benchmark_datasets();
    let mut data: Vec<String> = datasets
        .iter()
        .map(|slug| {
            let dir = work.path().join("shards").join(slug);
            standin_shards(&dir, class_count(slug));
            format!("{slug}={}/", dir.display())
        })
        .collect();
    // Retrieval too: the suite runs a retrieval dataset given its shards.
    for slug in retrieval_datasets() {
        let dir = work.path().join("shards").join(&slug);
        retrieval_standin(&dir);
        data.push(format!("{slug}={}/", dir.display()));
    }
    let out = work.path().join("results");
    let run = run_suite(
        &out,
        &format!("{a},{b}"),
        &[datasets.clone(), retrieval_datasets()].concat().join(","),
        &data,
        &["--ensemble", &format!("{a}=0.6,{b}=0.4")],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let page = out.join("report.html");

    // The DOM Chromium built: every table and chart is there, parsed.
    let (dom, console) = headless(&page, &["--dump-dom"]);
    assert!(console.is_empty(), "console: {console:#?}");
    for table in TABLES {
        let at = dom
            .find(&format!("id=\"table-{table}\""))
            .unwrap_or_else(|| panic!("no table {table} on the page"));
        let section = &dom[at..dom[at..].find("</section>").unwrap() + at];
        assert!(
            section.contains("<table>") && section.contains("<td"),
            "{table} has no rows"
        );
        assert!(
            section.contains("<summary>SQL</summary>"),
            "{table} has no SQL"
        );
    }
    for chart in CHARTS {
        let at = dom
            .find(&format!("id=\"chart-{chart}\""))
            .unwrap_or_else(|| panic!("no chart {chart} on the page"));
        assert!(
            dom[at..].trim_start_matches(|c| c != '<').contains("<svg"),
            "{chart}"
        );
    }
    // The matrix as the article lays it out: one table per task group.
    for group in [
        "general objects",
        "fine-grained",
        "remote sensing",
        "all datasets",
    ] {
        assert!(
            dom.contains(&format!("<h4>{group}</h4>")),
            "no {group} table"
        );
    }
    // Every dataset's row in the accuracy table (17 datasets x 2 models),
    // every retrieval dataset's in the retrieval table, and CLIP_benchmark's
    // JSON for each.
    let accuracy = csv_lines(&out.join("tables/accuracy.csv"));
    assert_eq!(accuracy.len(), 1 + 2 * datasets.len());
    let retrieval = csv_lines(&out.join("tables/retrieval.csv"));
    assert_eq!(
        retrieval.len(),
        1 + 2 * retrieval_datasets().len(),
        "{retrieval:?}"
    );
    for row in &retrieval[1..] {
        // Six images, twelve captions: at k = 10 every caption finds its
        // image; recall grows with k.
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(&cells[2..4], ["6", "12"], "{row}");
        assert_eq!(cells[6], "100.0", "{row}");
        let text: Vec<f64> = cells[7..10].iter().map(|c| c.parse().unwrap()).collect();
        assert!(text[0] <= text[1] && text[1] <= text[2], "{row}");
    }
    let json: Vec<String> = std::fs::read_dir(out.join("clip_benchmark"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        json.len(),
        2 * (datasets.len() + retrieval_datasets().len())
    );
    let flickr = json
        .iter()
        .find(|name| {
            name.starts_with("flickr30k_local_") && name.ends_with("_zeroshot_retrieval.json")
        })
        .unwrap_or_else(|| panic!("no Flickr30k result in {json:?}"));
    let document: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("clip_benchmark").join(flickr)).unwrap(),
    )
    .unwrap();
    assert_eq!(document["task"], "zeroshot_retrieval");
    assert_eq!(document["metrics"]["image_retrieval_recall@10"], 1.0);

    // Drawn: the charts' colours are on the screenshot.
    let shot = work.path().join("page.png");
    let (_, console) = headless(
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,6000",
        ],
    );
    assert!(console.is_empty(), "console: {console:#?}");
    let pixels = image::open(&shot).unwrap().to_rgb8();
    for colour in [[0u8, 114, 178], [230, 159, 0]] {
        let count = pixels.pixels().filter(|p| p.0 == colour).count();
        assert!(
            count > 5000,
            "only {count} pixels of {colour:?}: charts not drawn"
        );
    }
    if let Some(keep) = std::env::var_os("CLIP_KEEP_REPORT_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }

    // Other weights: `clip-sql report` rebuilds tables, charts and page.
    let read_weighted = || -> Vec<String> {
        [
            "tables/ensemble.csv",
            "charts/ensemble_by_dataset.svg",
            "report.html",
        ]
        .iter()
        .map(|f| std::fs::read_to_string(out.join(f)).unwrap())
        .collect()
    };
    let before = read_weighted();
    report(&out, &["--ensemble", &format!("{a}=0.1,{b}=0.9")]);
    let after = read_weighted();
    for (file, (old, new)) in ["ensemble.csv", "the ensemble chart", "report.html"]
        .iter()
        .zip(before.iter().zip(&after))
    {
        assert_ne!(old, new, "{file} did not follow the new weights");
    }
    assert!(after[0].contains(",0.9,"), "{}", after[0]);
    assert!(
        after[1].contains("tiny-b × 0.9"),
        "the chart's legend keeps the old weights"
    );
    assert!(
        after[2].contains(&format!("{a}=0.1,{b}=0.9")),
        "the page shows the old weights"
    );

    // A bench result beside accuracy: batch-1 latency, the best images/s
    // and its batch, memory, and correct_per_s = images/s x mean top-1.
    let bench = work.path().join("bench");
    std::fs::create_dir_all(&bench).unwrap();
    let header = "model,device,dtype,image_size,load_s,latency_ms,batch,images_per_s,note,\
                  prompts_per_s,peak_device_bytes,peak_host_bytes";
    std::fs::write(
        bench.join("efficiency.csv"),
        format!(
            "{header}\n{a},cpu,f32,32,0.1,2.5,1,400.0,,900.0,,104857600\n\
             {a},cpu,f32,32,0.1,2.5,64,1000.0,,900.0,,209715200\n"
        ),
    )
    .unwrap();
    report(&out, &["--efficiency", bench.to_str().unwrap()]);
    let efficiency = csv_lines(&out.join("tables/efficiency.csv"));
    let mean_acc1: f64 = csv_lines(&out.join("tables/accuracy.csv"))[1..]
        .iter()
        .map(|line| line.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|row| row[0] == a)
        .map(|row| row[6].parse::<f64>().unwrap())
        .sum::<f64>()
        / datasets.len() as f64;
    let mean_acc1 = (mean_acc1 * 100.0).round() / 100.0;
    assert_eq!(efficiency.len(), 2, "{efficiency:?}");
    let row: Vec<&str> = efficiency[1].split(',').collect();
    assert_eq!(
        &row[..6],
        [a.as_str(), "cpu", "f32", "2.5", "64", "1000.0"],
        "{row:?}"
    );
    assert_eq!(row[6], "", "no device memory measured on the CPU");
    assert_eq!(row[7], "200.0");
    assert_eq!(row[8].parse::<f64>().unwrap(), mean_acc1);
    let correct = (1000.0 * mean_acc1 / 100.0 * 10.0).round() / 10.0;
    assert_eq!(row[9].parse::<f64>().unwrap(), correct);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("id=\"table-efficiency\""),
        "no efficiency on the page"
    );

    // A folder without efficiency.csv is named, not ignored.
    let report = clip_sql(&[
        "report",
        "--results",
        out.to_str().unwrap(),
        "--efficiency",
        "/nonexistent",
    ]);
    assert!(!report.status.success());
    assert!(
        String::from_utf8_lossy(&report.stderr).contains("no efficiency.csv"),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
}

/// `clip-sql report` over `results` with `extra` arguments; it must succeed.
fn report(results: &Path, extra: &[&str]) {
    let root = repo();
    let (benchmarks, sqldata) = (format!("{root}/sql/benchmarks"), format!("{root}/sql/data"));
    let mut args = vec![
        "report",
        "--results",
        results.to_str().unwrap(),
        "--benchmarks",
        &benchmarks,
        "--sqldata",
        &sqldata,
    ];
    args.extend(extra);
    let out = clip_sql(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn csv_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}
