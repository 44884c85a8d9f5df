//! Zero-shot retrieval: WEBDATASET's `captions` column in CLIP_benchmark's
//! retrieval layout, and the retrieval benchmark files run end to end on
//! a tiny model. (Equality with CLIP_benchmark's own figures on a
//! full-size random ViT-B/32: benches/peer/retrieval_standin.py.)

use std::path::Path;

use crate::common::*;

/// `root/dataset_type.txt` (when `retrieval`) and `root/test/0.tar` with
/// `images` samples, each a PNG and a .txt of `captions`.
fn retrieval_layout(root: &Path, images: u32, captions: &[&str], retrieval: bool) {
    let test = root.join("test");
    std::fs::create_dir_all(&test).unwrap();
    if retrieval {
        std::fs::write(root.join("dataset_type.txt"), "retrieval\n").unwrap();
    }
    let samples: Vec<Sample> = (0..images)
        .map(|i| {
            (
                format!("s{i:04}"),
                vec![
                    ("png", png_bytes(40 + i, 30, i)),
                    (
                        "txt",
                        captions[i as usize % captions.len()].as_bytes().to_vec(),
                    ),
                ],
            )
        })
        .collect();
    std::fs::write(test.join("0.tar"), webdataset_shard(&samples)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retrieval_layout_gives_captions_split_as_clip_benchmark_splits_them() {
    let dir = tempfile::tempdir().unwrap();
    let texts = ["a dog\nrunning dog\n", "a cat\r\non a mat", "one line"];
    retrieval_layout(dir.path(), 3, &texts, true);
    let ctx = context();
    let location = dir.path().join("test");
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS WEBDATASET LOCATION '{}/'",
            location.display()
        ),
    )
    .await
    .unwrap();
    let text = query_text(&ctx, "SELECT key, captions FROM t ORDER BY key").await;
    assert_eq!(
        table_rows(&text),
        [
            ["s0000", "[a dog, running dog]"],
            ["s0001", "[a cat, on a mat]"],
            ["s0002", "[one line]"],
        ]
    );

    // Without dataset_type.txt it is a plain WebDataset: no captions.
    let plain = tempfile::tempdir().unwrap();
    retrieval_layout(plain.path(), 2, &texts, false);
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE p STORED AS WEBDATASET LOCATION '{}/test/'",
            plain.path().display()
        ),
    )
    .await
    .unwrap();
    let table = ctx.table("p").await.unwrap();
    let columns: Vec<&str> = table
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(columns, ["key", "label", "image", "txt"]);
}

#[test]
fn the_retrieval_benchmark_files_run_and_their_recalls_are_consistent() {
    let dir = tempfile::tempdir().unwrap();
    // Six images, two captions each: twelve captions.
    let texts = [
        "a red square\na small box",
        "a blue circle\nround thing",
        "green hills\na landscape",
    ];
    retrieval_layout(dir.path(), 6, &texts, true);
    let data = format!("data={}/test/", dir.path().display());
    let model = format!("model={}", tiny_model());
    for file in ["flickr30k", "flickr8k", "mscoco_captions"] {
        let out = clip_sql(&[
            "-q",
            "--format",
            "csv",
            "-f",
            &format!("sql/benchmarks/{file}.sql"),
            "--param",
            &model,
            "--param",
            &data,
        ]);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines[0],
            "model,dataset,images,captions,image_retrieval_recall@1,image_retrieval_recall@5,\
             image_retrieval_recall@10,text_retrieval_recall@1,text_retrieval_recall@5,\
             text_retrieval_recall@10",
            "{file}"
        );
        let row: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(&row[1..4], [file, "6", "12"], "{file}");
        let recall: Vec<f64> = row[4..].iter().map(|v| v.parse().unwrap()).collect();
        // Six images: every caption's image is among its ten best.
        assert_eq!(recall[2], 100.0, "{file}: {row:?}");
        // Recall grows with k, both ways.
        assert!(recall[0] <= recall[1] && recall[1] <= recall[2], "{row:?}");
        assert!(recall[3] <= recall[4] && recall[4] <= recall[5], "{row:?}");
        // Each image has 2 of the 12 captions: at k = 10 at least one is in.
        assert_eq!(recall[5], 100.0, "{file}: {row:?}");
    }
}

/// report_retrieval.sql on runs made up here: recall by hand, and the
/// published figures beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retrieval_report_gives_hand_computed_recalls_beside_published_ones() {
    let work = tempfile::tempdir().unwrap();
    let results = work.path();
    let ctx = context();
    for dir in ["image_retrieval", "text_retrieval"] {
        std::fs::create_dir_all(results.join(dir)).unwrap();
    }
    // Four captions of two images: ranks of the right image 1, 2, 6, none.
    let image = results.join("image_retrieval/flickr30k__RN50.parquet");
    query(
        &ctx,
        &format!(
            "COPY (SELECT 'RN50' AS model, 'flickr30k' AS dataset, CAST(c AS INT) AS caption_index, \
                    CAST(i AS INT) AS image_index, 'a caption' AS caption, CAST(top AS INT[]) AS top10_images \
             FROM (VALUES (0, 0, [0, 1, 2]), (1, 0, [1, 0, 2]), (2, 1, [0, 2, 3, 4, 5, 1]), \
                          (3, 1, [0, 2, 3])) AS t(c, i, top)) TO '{}'",
            image.display()
        ),
    )
    .await
    .unwrap();
    // Two images: the first of their captions at rank 1 and 7.
    let text = results.join("text_retrieval/flickr30k__RN50.parquet");
    query(
        &ctx,
        &format!(
            "COPY (SELECT 'RN50' AS model, 'flickr30k' AS dataset, CAST(i AS INT) AS image_index, \
                    'k' AS key, CAST([0] AS INT[]) AS top10_captions, CAST(h AS BIGINT) AS first_hit \
             FROM (VALUES (0, 1), (1, 7)) AS t(i, h)) TO '{}'",
            text.display()
        ),
    )
    .await
    .unwrap();
    let run = clip_sql(&[
        "-q",
        "-f",
        "sql/benchmarks/report_retrieval.sql",
        "--param",
        &format!("results={}", results.display()),
        "--param",
        "sqldata=sql/data",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table = |name: &str| -> Vec<String> {
        std::fs::read_to_string(results.join(format!("tables/{name}.csv")))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        table("retrieval")[1],
        "RN50,flickr30k,2,4,25.0,50.0,75.0,50.0,50.0,100.0"
    );
    let published = table("retrieval_vs_published");
    assert_eq!(published.len(), 1 + 6);
    assert!(
        published
            .contains(&"RN50,flickr30k,image_retrieval_recall@1,25.0,57.36,-32.36".to_string()),
        "{published:?}"
    );
}

/// A suite of retrieval runs alone: no classification tables, a report
/// all the same, which `clip-sql report` rebuilds.
#[test]
fn a_suite_of_retrieval_alone_writes_its_report() {
    let work = tempfile::tempdir().unwrap();
    let shards = work.path().join("flickr8k");
    retrieval_standin(&shards);
    let out = work.path().join("results");
    let run = run_suite(
        &out,
        &tiny_model(),
        "flickr8k",
        &[format!("flickr8k={}/", shards.display())],
        &[],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let retrieval = std::fs::read_to_string(out.join("tables/retrieval.csv")).unwrap();
    assert_eq!(retrieval.lines().count(), 2, "{retrieval}");
    assert!(!out.join("tables/accuracy.csv").exists());
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("id=\"table-retrieval\""));
    let json = std::fs::read_dir(out.join("clip_benchmark"))
        .unwrap()
        .count();
    assert_eq!(json, 1);

    let root = repo();
    let again = clip_sql(&[
        "report",
        "--results",
        out.to_str().unwrap(),
        "--benchmarks",
        &format!("{root}/sql/benchmarks"),
        "--sqldata",
        &format!("{root}/sql/data"),
    ]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
