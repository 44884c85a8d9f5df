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
