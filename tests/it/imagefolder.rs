//! `STORED AS IMAGEFOLDER` scans: nesting, skipped files, empty folders,
//! URLs, object stores the application registered, partitioning.

use std::sync::Arc;

use crate::common::*;
use datafusion::arrow::array::AsArray;
use datafusion::prelude::SessionContext;
use object_store::ObjectStoreExt;
use object_store::memory::InMemory;
use object_store::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_images_with_parent_directory_labels() {
    let dir = pets_folder();
    let ctx = context();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{}'",
            dir.path().display()
        ),
    )
    .await
    .unwrap();
    let text = query_text(
        &ctx,
        "SELECT label, count(*) AS n FROM pets GROUP BY label ORDER BY label",
    )
    .await;
    assert!(text.contains("| cat   | 3 |"), "{text}");
    assert!(text.contains("| dog   | 2 |"), "{text}");
    // Paths are the files' filesystem paths; image is each file's bytes.
    let rows = query(&ctx, "SELECT path, image FROM pets ORDER BY path")
        .await
        .unwrap();
    let mut seen = 0;
    for b in &rows {
        let (paths, images) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_binary::<i32>(),
        );
        for i in 0..b.num_rows() {
            assert!(paths.value(i).starts_with(dir.path().to_str().unwrap()));
            assert_eq!(
                images.value(i),
                std::fs::read(paths.value(i)).unwrap().as_slice()
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walks_nested_directories_and_skips_other_files() {
    let dir = folder(&[
        ("a/b/c/deep.PNG", png_bytes(10, 10, 1)),
        ("top.jpg", jpeg_bytes(10, 10, 2)),
        ("a/readme.md", b"# hi".to_vec()),
        ("a/.hidden.png", png_bytes(10, 10, 3)),
        ("a/._resource.jpg", b"mac resource fork".to_vec()),
        ("x/data.bin", vec![0u8; 100]),
    ]);
    let ctx = context();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS IMAGEFOLDER LOCATION '{}/'",
            dir.path().display()
        ),
    )
    .await
    .unwrap();
    let text = query_text(&ctx, "SELECT label, path FROM t ORDER BY path").await;
    assert!(
        text.contains("| c     |"),
        "deep file labelled by its parent: {text}"
    );
    assert!(
        text.contains("| NULL  |") || text.contains("|       |"),
        "root file has no label: {text}"
    );
    let n = query(&ctx, "SELECT count(*) FROM t").await.unwrap();
    assert_eq!(
        n[0].column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_folder_is_an_empty_table() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE e STORED AS IMAGEFOLDER LOCATION '{}'",
            dir.path().display()
        ),
    )
    .await
    .unwrap();
    let batches = query(
        &ctx,
        &format!("SELECT clip_embed_image('{}', image) FROM e", tiny_model()),
    )
    .await
    .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_url_location_works() {
    let dir = pets_folder();
    let ctx = context();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION 'file://{}/'",
            dir.path().display()
        ),
    )
    .await
    .unwrap();
    let text = query_text(&ctx, "SELECT count(*) AS n FROM pets").await;
    assert!(text.contains("| 5 |"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_from_an_object_store_the_application_registered() {
    let store = Arc::new(InMemory::new());
    for (key, bytes) in [
        ("datasets/pets/cat/a.png", png_bytes(20, 20, 1)),
        ("datasets/pets/dog/b.jpg", jpeg_bytes(20, 20, 2)),
        ("datasets/pets/dog/c.txt", b"text".to_vec()),
        ("datasets/other/cat/z.png", png_bytes(20, 20, 3)),
    ] {
        store.put(&Path::from(key), bytes.into()).await.unwrap();
    }
    let ctx = context();
    let url = url::Url::parse("s3://test-bucket").unwrap();
    ctx.register_object_store(&url, store);
    query(&ctx, "CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION 's3://test-bucket/datasets/pets/'")
        .await
        .unwrap();
    let text = query_text(&ctx, "SELECT path, label FROM pets ORDER BY path").await;
    assert!(
        text.contains("s3://test-bucket/datasets/pets/cat/a.png | cat"),
        "{text}"
    );
    assert!(
        text.contains("s3://test-bucket/datasets/pets/dog/b.jpg | dog"),
        "{text}"
    );
    assert!(
        !text.contains("z.png"),
        "other prefixes are not part of the table: {text}"
    );
    let m = tiny_model();
    let text = query_text(
        &ctx,
        &format!(
            "SELECT count(clip_zero_shot('{m}', image, ['cat', 'dog'])['label']) AS n FROM pets"
        ),
    )
    .await;
    assert!(text.contains("| 2 |"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_split_across_partitions_without_losing_rows() {
    let files: Vec<(String, Vec<u8>)> = (0..11)
        .map(|i| (format!("c{}/img{i:02}.png", i % 3), png_bytes(12, 12, i)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let dir = folder(&refs);
    let ctx = SessionContext::new_with_config(
        datafusion_clip::session_config().with_target_partitions(4),
    );
    datafusion_clip::register(&ctx).unwrap();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS IMAGEFOLDER LOCATION '{}'",
            dir.path().display()
        ),
    )
    .await
    .unwrap();
    let plan = query_text(&ctx, "EXPLAIN SELECT path FROM t").await;
    assert!(plan.contains("files=11, partitions=4"), "{plan}");
    let text = query_text(
        &ctx,
        &format!("SELECT count(DISTINCT path) AS n, count(clip_embed_image('{}', image)) AS embedded FROM t", tiny_model()),
    )
    .await;
    assert!(text.contains("| 11 | 11       |"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_column_lists_and_missing_folders_are_refused() {
    let ctx = context();
    let err = query(
        &ctx,
        "CREATE EXTERNAL TABLE t STORED AS IMAGEFOLDER LOCATION '/tmp' OPTIONS ('format.foo' 'bar')",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown IMAGEFOLDER option 'foo'"), "{err}");
    let err = query(
        &ctx,
        "CREATE EXTERNAL TABLE t (a INT) STORED AS IMAGEFOLDER LOCATION '/tmp'",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("(path, label, image)"), "{err}");
    let err = query(
        &ctx,
        "CREATE EXTERNAL TABLE t STORED AS IMAGEFOLDER LOCATION '/no/such/folder/'",
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("/no/such/folder/ is not a directory"), "{err}");
}
