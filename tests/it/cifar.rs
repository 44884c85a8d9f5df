//! `STORED AS CIFAR`: CIFAR-10 and CIFAR-100 binary batches written here
//! in the published layout, read back through SQL.

use crate::common::*;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int32Type;

/// A CIFAR-100 batch file: (coarse, fine, seed) per record.
fn cifar100_batch(records: &[(u8, u8, u32)]) -> Vec<u8> {
    records
        .iter()
        .flat_map(|&(coarse, fine, seed)| [coarse, fine].into_iter().chain(planes(seed)))
        .collect()
}

fn cifar10_dir() -> tempfile::TempDir {
    let train: Vec<(u8, u32)> = (0..25).map(|i| ((i % 10) as u8, i)).collect();
    let test: Vec<(u8, u32)> = (0..7).map(|i| ((9 - i % 10) as u8, 100 + i)).collect();
    folder(&[
        (
            "cifar-10-batches-bin/data_batch_1.bin",
            cifar10_batch(&train[..15]),
        ),
        (
            "cifar-10-batches-bin/data_batch_2.bin",
            cifar10_batch(&train[15..]),
        ),
        ("cifar-10-batches-bin/test_batch.bin", cifar10_batch(&test)),
        (
            "cifar-10-batches-bin/batches.meta.txt",
            b"airplane\nautomobile\n".to_vec(),
        ),
    ])
}

async fn create(ctx: &datafusion::prelude::SessionContext, name: &str, location: &str) {
    query(
        ctx,
        &format!("CREATE EXTERNAL TABLE {name} STORED AS CIFAR LOCATION '{location}'"),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cifar10_batches_read_as_rows_with_exact_pixels() {
    let dir = cifar10_dir();
    let root = dir.path().join("cifar-10-batches-bin");
    let ctx = context();
    // Small batches and several partitions: ranges must still cover every record once.
    query(&ctx, "SET clip.batch_size = 2").await.unwrap();
    query(&ctx, "SET datafusion.execution.target_partitions = 3")
        .await
        .unwrap();
    create(&ctx, "c10", &format!("{}/", root.display())).await;

    let text = query_text(
        &ctx,
        "SELECT split, count(*) AS n, count(DISTINCT key) AS keys, sum(label) AS s \
         FROM c10 GROUP BY split ORDER BY split",
    )
    .await;
    let rows = table_rows(&text);
    let train_sum: i32 = (0..25).map(|i| i % 10).sum();
    let test_sum: i32 = (0..7).map(|i| 9 - i % 10).sum();
    assert_eq!(rows[0], ["test", "7", "7", &test_sum.to_string()], "{text}");
    assert_eq!(
        rows[1],
        ["train", "25", "25", &train_sum.to_string()],
        "{text}"
    );

    let batches = query(
        &ctx,
        "SELECT key, label, image FROM c10 WHERE split = 'test' ORDER BY key",
    )
    .await
    .unwrap();
    let mut i = 0u32;
    for b in &batches {
        let keys = b.column(0).as_string::<i32>();
        let labels = b.column(1).as_primitive::<Int32Type>();
        let images = b.column(2).as_binary::<i32>();
        for r in 0..b.num_rows() {
            assert_eq!(keys.value(r), format!("test_batch.bin/{i:05}"));
            assert_eq!(labels.value(r), 9 - (i % 10) as i32);
            let decoded = image::load_from_memory(images.value(r)).unwrap().to_rgb8();
            assert_eq!(decoded, rgb_image(32, 32, 100 + i).to_rgb8(), "record {i}");
            i += 1;
        }
    }
    assert_eq!(i, 7);

    // LIMIT reads only what it needs; the CLIP functions take the images.
    let text = query_text(
        &ctx,
        &format!(
            "SELECT count(p) AS n FROM (SELECT clip_zero_shot('{}', image, ['airplane', 'automobile']) AS p \
             FROM c10 LIMIT 5)",
            tiny_model()
        ),
    )
    .await;
    assert_eq!(table_rows(&text)[0], ["5"], "{text}");

    // One file as the location.
    create(
        &ctx,
        "c10_test",
        &root.join("test_batch.bin").display().to_string(),
    )
    .await;
    let text = query_text(&ctx, "SELECT count(*) AS n FROM c10_test").await;
    assert_eq!(table_rows(&text)[0], ["7"], "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cifar100_has_fine_and_coarse_labels() {
    let train: Vec<(u8, u8, u32)> = (0..6).map(|i| ((i * 3) as u8, (i * 17) as u8, i)).collect();
    let dir = folder(&[
        ("cifar-100-binary/train.bin", cifar100_batch(&train)),
        ("cifar-100-binary/test.bin", cifar100_batch(&[(19, 99, 50)])),
    ]);
    let ctx = context();
    create(
        &ctx,
        "c100",
        &format!("{}/cifar-100-binary/", dir.path().display()),
    )
    .await;
    let batches = query(&ctx, "SELECT * FROM c100 ORDER BY key")
        .await
        .unwrap();
    let schema = batches[0].schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["key", "split", "label", "coarse_label", "image"]);
    let text = query_text(
        &ctx,
        "SELECT key, split, label, coarse_label FROM c100 ORDER BY key",
    )
    .await;
    let rows = table_rows(&text);
    assert_eq!(rows[0], ["test.bin/00000", "test", "99", "19"], "{text}");
    assert_eq!(rows[3], ["train.bin/00002", "train", "34", "6"], "{text}");
    assert_eq!(rows.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_batches_and_bad_options_are_clear_errors() {
    let ctx = context();
    let record = cifar10_batch(&[(1, 1)]);

    // Truncated: not a whole number of records.
    let mut truncated = cifar10_batch(&[(1, 1), (2, 2)]);
    truncated.truncate(truncated.len() - 100);
    let dir = folder(&[("c/test_batch.bin", truncated)]);
    create(&ctx, "t1", &format!("{}/c/", dir.path().display())).await;
    let err = query(&ctx, "SELECT count(*) FROM t1")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("test_batch.bin has 6046 bytes"), "{err}");
    assert!(err.contains("truncated"), "{err}");

    // Empty: an error, not 0 rows.
    let empty = folder(&[("c/test_batch.bin", Vec::new())]);
    create(&ctx, "t0", &format!("{}/c/", empty.path().display())).await;
    let err = query(&ctx, "SELECT count(*) FROM t0")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("test_batch.bin is empty (0 bytes)"), "{err}");

    // A label byte outside CIFAR-10's classes names the record.
    let mut bad_label = cifar10_batch(&[(1, 1), (2, 2)]);
    bad_label[3073] = 200;
    let dir2 = folder(&[("c/test_batch.bin", bad_label)]);
    create(&ctx, "t2", &format!("{}/c/", dir2.path().display())).await;
    let err = query(&ctx, "SELECT label FROM t2")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("test_batch.bin/00001"), "{err}");

    // No batches at all, a name that says nothing, unknown options.
    let dir3 = folder(&[("empty/readme.txt", b"x".to_vec()), ("odd/x.bin", record)]);
    for (sql, expected) in [
        (
            format!(
                "CREATE EXTERNAL TABLE e STORED AS CIFAR LOCATION '{}/empty/'",
                dir3.path().display()
            ),
            "no CIFAR batches",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE e STORED AS CIFAR LOCATION '{}/odd/' OPTIONS ('colour' 'red')",
                dir3.path().display()
            ),
            "unknown CIFAR option 'colour'",
        ),
    ] {
        let err = query(&ctx, &sql).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{sql}: {err}");
    }
    // x.bin holds one CIFAR-10 record: its size tells, and the option agrees.
    create(&ctx, "odd", &format!("{}/odd/", dir3.path().display())).await;
    let text = query_text(&ctx, "SELECT key, label FROM odd").await;
    assert_eq!(table_rows(&text)[0], ["x.bin/00000", "1"], "{text}");
    let err = query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE odd2 STORED AS CIFAR LOCATION '{}/odd/' OPTIONS ('variant' '100')",
            dir3.path().display()
        ),
    )
    .await
    .and(query(&ctx, "SELECT * FROM odd2").await)
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("not a whole number of CIFAR-100 records"),
        "{err}"
    );
}
