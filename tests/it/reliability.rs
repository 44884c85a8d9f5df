//! Bad inputs and faults: every case gives a NULL with a reason or an
//! error that names the problem — never a panic, a hang or a wrong number.

use std::sync::Arc;

use crate::common::*;
use datafusion::arrow::array::{
    Array, AsArray, BinaryArray, Int64Array, RecordBatch, StringArray, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(format!("{ROOT}/tests/fixtures/{rel}")).unwrap()
}

fn cut(bytes: Vec<u8>, keep_percent: usize) -> Vec<u8> {
    let n = bytes.len() * keep_percent / 100;
    bytes[..n].to_vec()
}

/// A PNG whose header declares `width x height` (the pixel data is absent):
/// what a decompression bomb looks like to a reader that trusts headers.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

/// One file of every kind the issue lists: (file name, bytes, the reason's
/// expected words, or `None` when the image must work).
fn every_kind() -> Vec<(&'static str, Vec<u8>, Option<&'static str>)> {
    let mut wrong_magic = png_bytes(30, 30, 3);
    wrong_magic[..4].copy_from_slice(b"GARB");
    vec![
        ("zero_bytes.png", Vec::new(), Some("empty (0 bytes)")),
        (
            "truncated.jpg",
            cut(jpeg_bytes(64, 48, 1), 60),
            Some("truncated"),
        ),
        (
            "truncated.png",
            cut(png_bytes(64, 48, 2), 60),
            Some("cannot decode Png"),
        ),
        (
            "truncated.webp",
            cut(fixture("images/rgb_400x300_lossy.webp"), 50),
            Some("cannot decode WebP"),
        ),
        (
            "wrong_magic.png",
            wrong_magic,
            Some("not a supported image"),
        ),
        (
            "not_an_image.jpg",
            b"<html>this is not a picture</html>".to_vec(),
            Some("not a supported image"),
        ),
        ("one_by_one.png", png_bytes(1, 1, 4), None),
        // 100000x1 is refused at 224 pixels (see below); the tiny model's
        // 32-pixel input needs a longer sliver to overflow the limit.
        (
            "sliver_1000000x1.png",
            png_bytes(1_000_000, 1, 5),
            Some("resizing its short side"),
        ),
        (
            "bomb_100000x100000.png",
            png_declaring(100_000, 100_000),
            Some("decompression bomb"),
        ),
        (
            "animated.gif",
            fixture("animated/animated_3_frames.gif"),
            None,
        ),
        (
            "animated.webp",
            fixture("animated/animated_3_frames.webp"),
            None,
        ),
        ("cmyk.jpg", fixture("images/cmyk_200x150.jpg"), None),
        ("sixteen_bit.png", fixture("images/rgb16_160x120.png"), None),
        (
            "gray_sixteen_bit.png",
            fixture("images/l16_200x150.png"),
            None,
        ),
        ("palette.png", fixture("images/p_150x100.png"), None),
        ("alpha.png", fixture("images/rgba_90x120.png"), None),
        ("gray_alpha.png", fixture("images/la_64x40.png"), None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_images_of_every_kind_give_null_and_a_reason_good_ones_work() {
    let cases = every_kind();
    let files: Vec<(String, Vec<u8>)> = cases
        .iter()
        .map(|(name, bytes, _)| (format!("all/{name}"), bytes.clone()))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let dir = folder(&refs);
    let ctx = context();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS IMAGEFOLDER LOCATION '{}'",
            dir.path().display()
        ),
    )
    .await
    .unwrap();
    let sql = format!(
        "SELECT path, clip_embed_image('{m}', image) IS NOT NULL AS embedded, \
                clip_zero_shot('{m}', image, ['cat', 'dog'])['label'] AS predicted, \
                clip_image_error('{m}', image) AS error \
         FROM t ORDER BY path",
        m = tiny_model()
    );
    let batches = query(&ctx, &sql).await.unwrap();
    let mut seen = 0;
    for b in &batches {
        let paths = b.column(0).as_string::<i32>();
        let embedded = b.column(1).as_boolean();
        let predicted = b.column(2);
        let errors = b.column(3).as_string::<i32>();
        for i in 0..b.num_rows() {
            let path = paths.value(i);
            let (_, _, expected) = cases
                .iter()
                .find(|(name, _, _)| path.ends_with(name))
                .unwrap();
            seen += 1;
            match expected {
                None => {
                    assert!(embedded.value(i), "{path} should embed");
                    assert!(predicted.is_valid(i), "{path} should be predicted");
                    assert!(errors.is_null(i), "{path}: {}", errors.value(i));
                }
                Some(words) => {
                    assert!(!embedded.value(i), "{path} should be NULL");
                    assert!(predicted.is_null(i), "{path} should not be predicted");
                    let reason = errors.value(i);
                    assert!(
                        reason.contains(words),
                        "{path}: '{words}' not in '{reason}'"
                    );
                }
            }
        }
    }
    assert_eq!(seen, cases.len());

    // The benchmark shape: n counts every row, n_failed the NULL ones.
    let text = query_text(
        &ctx,
        &format!(
            "SELECT count(*) AS n, count(p) AS n_predicted, count(*) - count(p) AS n_failed \
             FROM (SELECT clip_zero_shot('{}', image, ['cat', 'dog']) AS p FROM t)",
            tiny_model()
        ),
    )
    .await;
    let bad = cases.iter().filter(|c| c.2.is_some()).count();
    let rows = table_rows(&text);
    assert_eq!(
        rows[0],
        [
            cases.len().to_string(),
            (cases.len() - bad).to_string(),
            bad.to_string()
        ]
    );
}

#[test]
fn a_100000x1_sliver_is_refused_at_clip_sizes_before_resizing() {
    use clip_model::Preprocessor;
    let sliver = png_bytes(100_000, 1, 5);
    for size in [224, 336] {
        let err = Preprocessor::new(size).preprocess(&sliver).unwrap_err();
        assert!(err.to_string().contains("100000x1"), "{err}");
        assert!(err.to_string().contains("clip.max_image_pixels"), "{err}");
    }
}

#[test]
fn animated_images_use_their_first_frame() {
    use clip_model::Preprocessor;
    let pre = Preprocessor::new(32);
    for format in ["gif", "webp"] {
        let animated = pre
            .preprocess(&fixture(&format!("animated/animated_3_frames.{format}")))
            .unwrap();
        let first = pre
            .preprocess(&fixture(&format!("animated/first_frame.{format}")))
            .unwrap();
        assert_eq!(animated, first, "{format}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_image_has_a_reason_too() {
    let ctx = context();
    let text = query_text(&ctx, "SELECT clip_image_error(CAST(NULL AS BYTEA)) AS e").await;
    assert!(text.contains("image is NULL"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_image_pixels_setting_refuses_larger_images() {
    let dir = folder(&[
        ("x/small_40x40.png", png_bytes(40, 40, 1)),
        ("x/large_50x50.png", png_bytes(50, 50, 2)),
        ("x/large_50x50.jpg", jpeg_bytes(50, 50, 3)),
    ]);
    let ctx = context();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS IMAGEFOLDER LOCATION '{}'",
            dir.path().display()
        ),
    )
    .await
    .unwrap();
    query(&ctx, "SET clip.max_image_pixels = 2000")
        .await
        .unwrap();
    let text = query_text(
        &ctx,
        &format!(
            "SELECT path, clip_embed_image('{m}', image) IS NULL AS refused, clip_image_error('{m}', image) AS e \
             FROM t ORDER BY path",
            m = tiny_model()
        ),
    )
    .await;
    let rows = table_rows(&text);
    assert_eq!(rows.len(), 3, "{text}");
    for row in &rows {
        let large = row[0].contains("large");
        assert_eq!(row[1], large.to_string(), "{text}");
        if large {
            assert!(row[2].contains("clip.max_image_pixels = 2000"), "{text}");
        } else {
            assert_eq!(row[2], "", "no reason: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_error_names_the_failing_file() {
    let dir = folder(&[
        ("cat/good.png", png_bytes(40, 30, 1)),
        ("cat/broken.jpg", cut(jpeg_bytes(64, 48, 1), 50)),
        ("dog/good.png", png_bytes(40, 30, 2)),
    ]);
    let ctx = context();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t STORED AS IMAGEFOLDER LOCATION '{}'",
            dir.path().display()
        ),
    )
    .await
    .unwrap();
    query(&ctx, "SET clip.on_error = 'error'").await.unwrap();
    let m = tiny_model();
    for sql in [
        format!("SELECT clip_embed_image('{m}', image) FROM t"),
        format!("SELECT label, clip_zero_shot('{m}', image, ['cat', 'dog']) FROM t"),
        // Only the image selected: the path is still found for the message.
        format!("SELECT count(clip_zero_shot_probs('{m}', image, ['cat', 'dog'])) FROM t"),
    ] {
        let err = query(&ctx, &sql).await.unwrap_err().to_string();
        assert!(err.contains("cat/broken.jpg"), "{sql}: {err}");
        assert!(err.contains("truncated"), "{sql}: {err}");
    }
    // Output column names are those the user wrote, rewrite or not.
    let batches = query(
        &ctx,
        &format!("SELECT clip_embed_image('{m}', image) FROM t WHERE path LIKE '%good%'"),
    )
    .await
    .unwrap();
    assert_eq!(
        batches[0].schema().field(0).name(),
        &format!("clip_embed_image(Utf8(\"{m}\"),t.image)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_structs_name_rows_and_work_like_bytes() {
    // Hugging Face's image feature: struct<bytes: binary, path: string>.
    let fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    let bytes = BinaryArray::from_iter(vec![
        Some(png_bytes(32, 32, 1)),
        Some(b"junk".to_vec()),
        None,
    ]);
    let paths = StringArray::from(vec!["train/0.png", "train/1.png", "train/2.png"]);
    let img = StructArray::try_new(
        fields.clone(),
        vec![Arc::new(bytes.clone()), Arc::new(paths)],
        None,
    )
    .unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("img", DataType::Struct(fields), true),
        Field::new("raw", DataType::Binary, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![0, 1, 2])),
            Arc::new(img),
            Arc::new(bytes),
        ],
    )
    .unwrap();
    let ctx = context();
    ctx.register_table(
        "hf",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    let m = tiny_model();
    let text = query_text(
        &ctx,
        &format!(
            "SELECT id, clip_embed_image('{m}', img) = clip_embed_image('{m}', raw) AS same, \
                    clip_image_error(img) AS e, clip_image_error(raw) AS r FROM hf ORDER BY id"
        ),
    )
    .await;
    let rows = table_rows(&text);
    assert_eq!(rows[0][1], "true", "{text}");
    assert_eq!(rows[1][1], "", "NULL: {text}");
    assert!(rows[1][2].contains("not a supported image"), "{text}");
    // A path without bytes: what Hugging Face datasets keep of external files.
    assert!(
        rows[2][2].starts_with(
            "the image struct names 'train/2.png' but holds no bytes, as a Hugging Face \
             dataset saved with its images as external files does"
        ),
        "{text}"
    );
    assert!(rows[2][3].contains("image is NULL"), "{text}");

    query(&ctx, "SET clip.on_error = 'error'").await.unwrap();
    let err = query(
        &ctx,
        &format!("SELECT clip_zero_shot('{m}', img, ['a', 'b']) FROM hf"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("image 'train/1.png'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argument_errors_are_found_at_planning() {
    let ctx = context();
    ctx.register_table(
        "imgs",
        Arc::new(
            MemTable::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("image", DataType::Binary, true),
                    Field::new("n", DataType::Int64, true),
                ])),
                vec![vec![]],
            )
            .unwrap(),
        ),
    )
    .unwrap();
    let m = tiny_model();
    let cases = [
        (
            "SELECT clip_zero_shot('RN51', image, ['a']) FROM imgs".to_string(),
            vec!["unknown model 'RN51'", "RN50", "local directory"],
        ),
        (
            format!("SELECT clip_zero_shot('{m}', image, NULL) FROM imgs"),
            vec!["labels argument is NULL"],
        ),
        (
            format!("SELECT clip_zero_shot('{m}', image, CAST(NULL AS VARCHAR[])) FROM imgs"),
            vec!["labels argument is NULL"],
        ),
        (
            format!("SELECT clip_zero_shot_probs('{m}', image, ['a'], NULL) FROM imgs"),
            vec!["templates argument is NULL"],
        ),
        (
            format!("SELECT clip_zero_shot('{m}', image, ['a'], ['photo of {{x}}']) FROM imgs"),
            vec!["no placeholder"],
        ),
        (
            format!("SELECT clip_zero_shot('{m}', image, ['a'], []) FROM imgs"),
            vec!["templates list is empty"],
        ),
        (
            format!("SELECT clip_embed_image('{m}', n) FROM imgs"),
            vec!["encoded image bytes", "Int64"],
        ),
        (
            format!("SELECT clip_image_error('{m}', n) FROM imgs"),
            vec!["encoded image bytes", "Int64"],
        ),
        (
            format!("SELECT clip_embed_text('{m}', image) FROM imgs"),
            vec!["clip_embed_text"],
        ),
        (
            format!(
                "SELECT cosine_similarity(clip_embed_image('{m}', image), \
                 arrow_cast([1.0, 2.0], 'FixedSizeList(2, Float32)')) FROM imgs"
            ),
            vec!["different lengths (24 and 2)"],
        ),
    ];
    for (sql, expected) in cases {
        // Planning alone (no rows are read) must fail.
        let err = match ctx.sql(&sql).await {
            Ok(df) => match df.create_physical_plan().await {
                Ok(_) => panic!("{sql} should fail at planning"),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        for words in expected {
            assert!(err.contains(words), "{sql}: '{words}' not in: {err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_labels_work() {
    let ctx = context();
    let images: Vec<Option<Vec<u8>>> = vec![Some(png_bytes(32, 32, 1)), Some(png_bytes(32, 32, 2))];
    let schema = Arc::new(Schema::new(vec![Field::new(
        "image",
        DataType::Binary,
        true,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(BinaryArray::from_iter(
            images.iter().map(|b| b.as_deref()),
        ))],
    )
    .unwrap();
    ctx.register_table(
        "imgs",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    query(
        &ctx,
        "CREATE TABLE classes AS SELECT value AS idx, concat('class ', value) AS name \
         FROM generate_series(0, 99999)",
    )
    .await
    .unwrap();
    query(&ctx, "SET clip.batch_size = 512").await.unwrap();
    let text = query_text(
        &ctx,
        &format!(
            "SELECT p['label_index'] AS i, array_length(p['top5']) AS k, \
                    array_length(q) AS n_probs, round(array_sum(q), 3) AS total \
             FROM (SELECT clip_zero_shot('{m}', image, (SELECT array_agg(name ORDER BY idx) FROM classes)) AS p, \
                          clip_zero_shot_probs('{m}', image, (SELECT array_agg(name ORDER BY idx) FROM classes)) AS q \
                   FROM imgs)",
            m = tiny_model()
        ),
    )
    .await;
    let rows = table_rows(&text);
    assert_eq!(rows.len(), 2, "{text}");
    for row in rows {
        let i: i64 = row[0].parse().unwrap();
        assert!((0..100_000).contains(&i), "{text}");
        assert_eq!(row[1], "5");
        assert_eq!(row[2], "100000");
        assert_eq!(row[3], "1.0");
    }
}

/// A copy of the tiny model's directory to break.
fn model_copy() -> tempfile::TempDir {
    copy_of(tiny_model_dir())
}

async fn embed_with(ctx: &SessionContext, model: &std::path::Path) -> Result<(), String> {
    query(
        ctx,
        &format!(
            "SELECT clip_embed_image('{}', image) FROM imgs",
            model.display()
        ),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_weights_are_named_and_never_cached() {
    let ctx = context();
    let schema = Arc::new(Schema::new(vec![Field::new(
        "image",
        DataType::Binary,
        true,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(BinaryArray::from_iter_values([png_bytes(
            20, 20, 1,
        )]))],
    )
    .unwrap();
    ctx.register_table(
        "imgs",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    let dir = model_copy();
    let weights = dir.path().join("model.safetensors");
    let good = std::fs::read(&weights).unwrap();

    // Truncated, as by an interrupted download.
    std::fs::write(&weights, &good[..good.len() * 2 / 3]).unwrap();
    let err = embed_with(&ctx, dir.path()).await.unwrap_err();
    assert!(err.contains("model.safetensors is truncated"), "{err}");
    assert!(err.contains("tensor '"), "{err}");

    // A header that is not JSON.
    let mut garbled = good.clone();
    garbled[8..16].copy_from_slice(b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8");
    std::fs::write(&weights, &garbled).unwrap();
    let err = embed_with(&ctx, dir.path()).await.unwrap_err();
    assert!(
        err.contains("model.safetensors is not a valid safetensors file"),
        "{err}"
    );

    // A tensor of the wrong shape: the error names it.
    std::fs::remove_file(&weights).unwrap();
    let mut config = clip_model::ClipConfig::tiny();
    config.vision_config.intermediate_size += 1;
    let other = tempfile::tempdir().unwrap();
    clip_model::checkpoint::write_random_model(other.path(), &config, 1).unwrap();
    std::fs::copy(other.path().join("model.safetensors"), &weights).unwrap();
    let err = embed_with(&ctx, dir.path()).await.unwrap_err();
    assert!(err.contains("mlp.fc1"), "{err}");

    // A pickle as torch.save wrote it before PyTorch 1.6 (the magic number
    // first), in place of the safetensors file: named, with what to do.
    std::fs::remove_file(&weights).unwrap();
    let legacy = dir.path().join("pytorch_model.bin");
    std::fs::write(&legacy, b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
    let err = embed_with(&ctx, dir.path()).await.unwrap_err();
    assert!(
        err.contains("pytorch_model.bin is not a zip-format"),
        "{err}"
    );
    assert!(err.contains("convert it to safetensors"), "{err}");
    std::fs::remove_file(&legacy).unwrap();

    // Repaired: it loads now, so nothing broken was kept.
    std::fs::write(&weights, &good).unwrap();
    embed_with(&ctx, dir.path()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_file_fails_the_scan_naming_it_or_is_skipped_and_counted() {
    let dir = folder(&[
        ("cat/a.png", png_bytes(40, 30, 1)),
        ("cat/b.png", png_bytes(40, 30, 2)),
        ("dog/c.png", png_bytes(40, 30, 3)),
    ]);
    let ctx = context();
    let location = dir.path().display().to_string();
    query(
        &ctx,
        &format!("CREATE EXTERNAL TABLE strict STORED AS IMAGEFOLDER LOCATION '{location}'"),
    )
    .await
    .unwrap();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE lenient STORED AS IMAGEFOLDER LOCATION '{location}' \
             OPTIONS ('skip_unreadable' 'true')"
        ),
    )
    .await
    .unwrap();
    let m = tiny_model();
    // Plan (which lists the files), then lose one before it is read: the
    // store fails mid-scan.
    let strict = ctx
        .sql(&format!(
            "SELECT clip_zero_shot('{m}', image, ['cat', 'dog']) FROM strict"
        ))
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let lenient = ctx
        .sql(&format!(
            "SELECT count(*) AS n, count(p) AS n_predicted, count(*) - count(p) AS n_failed \
             FROM (SELECT clip_zero_shot('{m}', image, ['cat', 'dog']) AS p FROM lenient)"
        ))
        .await
        .unwrap();
    let lenient_plan = lenient.create_physical_plan().await.unwrap();
    std::fs::remove_file(dir.path().join("cat/b.png")).unwrap();

    let err = datafusion::physical_plan::collect(strict, ctx.task_ctx())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read image file"), "{err}");
    assert!(err.contains("cat/b.png"), "{err}");
    assert!(err.contains("skip_unreadable"), "{err}");

    let batches = datafusion::physical_plan::collect(lenient_plan.clone(), ctx.task_ctx())
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert_eq!(table_rows(&text)[0], ["3", "2", "1"], "{text}");
    // The scan counts what it skipped.
    assert_eq!(metric_sum(lenient_plan.as_ref(), "unreadable_files"), 1);

    let err = query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE t2 STORED AS IMAGEFOLDER LOCATION '{location}' \
             OPTIONS ('skip_unreadable' 'maybe')"
        ),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("'true' or 'false'"), "{err}");
}

/// A FIFO given as the location: refused at `CREATE EXTERNAL TABLE`, not
/// opened (opening a FIFO for reading waits for a writer that never comes).
#[test]
fn a_fifo_as_location_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    for (format, name) in [("WEBDATASET", "shard.tar"), ("CIFAR", "test_batch.bin")] {
        let fifo = dir.path().join(name);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success(), "mkfifo {}", fifo.display());
        let sql = format!(
            "CREATE EXTERNAL TABLE t STORED AS {format} LOCATION '{}'",
            fifo.display()
        );
        // The query runs on a thread of its own so that, were it to wait,
        // this test fails (after releasing it) instead of hanging.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let result = runtime.block_on(async { query(&context(), &sql).await.map(|_| ()) });
            let _ = sender.send(result.map_err(|e| e.to_string()));
        });
        match receiver.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(result) => {
                let err = result.unwrap_err();
                assert!(
                    err.contains("is not a regular file or a directory"),
                    "{format}: {err}"
                );
                assert!(err.contains(name), "{format}: {err}");
            }
            Err(_) => {
                // A writer lets the waiting reader go.
                let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
                panic!("{format}: CREATE EXTERNAL TABLE on a FIFO is still waiting after 60 s");
            }
        }
    }
}

/// Folder and file names as users and Country211-style class folders have
/// them: non-ASCII letters, spaces and the characters URLs give a meaning
/// (`%`, `#`, `?`). Each table format reads them, and the `path` and
/// `label` columns show the names as written on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_non_ascii_letters_percent_hash_and_question_marks_are_read() {
    let names = [
        "café",
        "Zürich",
        "100%",
        "a#b",
        "why?",
        "two words",
        "%C3%A9",
    ];
    let files: Vec<(String, Vec<u8>)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (
                format!("photos/{name}/{name} {i}.png"),
                png_bytes(20, 10, i as u32),
            )
        })
        .collect();
    let mut all: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let shard = webdataset_shard(&[(
        "s0".to_string(),
        vec![("cls", b"0".to_vec()), ("png", png_bytes(20, 10, 9))],
    )]);
    all.push(("shärds #1/100% ?.tar", shard));
    all.push((
        "données #1/test_batch.bin",
        cifar10_batch(&[(3, 1), (5, 2)]),
    ));
    let dir = folder(&all);
    let root = dir.path().display();
    let ctx = context();

    query(
        &ctx,
        &format!("CREATE EXTERNAL TABLE photos STORED AS IMAGEFOLDER LOCATION '{root}/photos'"),
    )
    .await
    .unwrap();
    let text = query_text(
        &ctx,
        "SELECT label, path, clip_image_error(image) IS NULL AS read FROM photos ORDER BY label",
    )
    .await;
    let rows = table_rows(&text);
    let mut expected: Vec<&str> = names.to_vec();
    expected.sort();
    assert_eq!(rows.len(), names.len(), "{text}");
    for (row, name) in rows.iter().zip(&expected) {
        let i = names.iter().position(|n| n == name).unwrap();
        assert_eq!(row[0], *name, "{text}");
        assert_eq!(
            row[1],
            format!("{root}/photos/{name}/{name} {i}.png"),
            "{text}"
        );
        assert_eq!(row[2], "true", "{text}");
        assert!(std::path::Path::new(&row[1]).is_file(), "{}", row[1]);
    }

    for location in [
        format!("{root}/shärds #1/"),
        format!("{root}/shärds #1/100% ?.tar"),
    ] {
        let ctx = context();
        query(
            &ctx,
            &format!("CREATE EXTERNAL TABLE shards STORED AS WEBDATASET LOCATION '{location}'"),
        )
        .await
        .unwrap();
        let text = query_text(
            &ctx,
            "SELECT key, label, clip_image_error(image) IS NULL FROM shards",
        )
        .await;
        assert_eq!(
            table_rows(&text),
            [["s0", "0", "true"]],
            "{location}: {text}"
        );
    }

    for location in [
        format!("{root}/données #1/"),
        format!("{root}/données #1/test_batch.bin"),
    ] {
        let ctx = context();
        query(
            &ctx,
            &format!("CREATE EXTERNAL TABLE cifar STORED AS CIFAR LOCATION '{location}'"),
        )
        .await
        .unwrap();
        let text = query_text(
            &ctx,
            "SELECT label, clip_image_error(image) IS NULL FROM cifar ORDER BY key",
        )
        .await;
        assert_eq!(
            table_rows(&text),
            [["3", "true"], ["5", "true"]],
            "{location}: {text}"
        );
    }
}

/// More than 2 GiB of image bytes: one 2.3 GB file, then three 800 MB files
/// in one partition (sparse files, nothing written to disk). No panic from
/// arrow's 32-bit offsets: a file over `clip.max_image_bytes` is a NULL
/// image, never read, and batches end before their bytes could overflow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_2_gib_of_images_never_overflows_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let sparse = |rel: &str, bytes: u64| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(&path)
            .unwrap()
            .set_len(bytes)
            .unwrap();
    };
    sparse("one/c/big.jpg", 2_300_000_000);
    std::fs::write(dir.path().join("one/c/small.png"), png_bytes(20, 10, 1)).unwrap();
    for i in 0..3 {
        sparse(&format!("three/c/f{i}.tif"), 800_000_000);
    }
    let root = dir.path().display();
    let ctx = context();
    query(&ctx, "SET datafusion.execution.target_partitions = 1")
        .await
        .unwrap();
    for table in ["one", "three"] {
        query(
            &ctx,
            &format!(
                "CREATE EXTERNAL TABLE {table} STORED AS IMAGEFOLDER LOCATION '{root}/{table}'"
            ),
        )
        .await
        .unwrap();
    }

    // Default limit (512 MiB): the 2.3 GB file is not read; its NULL image
    // says why, and the scan counts it.
    let (plan, text) = query_with_plan(
        &ctx,
        "SELECT path, image IS NULL AS skipped, clip_image_error(image) AS e FROM one ORDER BY path",
    )
    .await;
    let rows = table_rows(&text);
    assert_eq!(rows.len(), 2, "{text}");
    assert!(
        rows[0][0].ends_with("big.jpg") && rows[0][1] == "true",
        "{text}"
    );
    assert!(rows[0][2].contains("clip.max_image_bytes"), "{text}");
    assert_eq!(rows[1][1..], ["false", ""], "{text}");
    assert_eq!(metric_sum(plan.as_ref(), "oversized_files"), 1);

    // clip.on_error = 'error': the query fails naming the file and the setting.
    query(&ctx, "SET clip.on_error = 'error'").await.unwrap();
    let err = query(&ctx, "SELECT count(image) FROM one")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("big.jpg") && err.contains("2300000000 bytes"),
        "{err}"
    );
    assert!(err.contains("clip.max_image_bytes = 536870912"), "{err}");
    query(&ctx, "SET clip.on_error = 'null'").await.unwrap();

    // Three 800 MB files under a 1 GiB limit are read, each in a batch of
    // its own: 2.4 GB in one partition, no overflow.
    query(&ctx, "SET clip.max_image_bytes = 1073741824")
        .await
        .unwrap();
    let text = query_text(
        &ctx,
        "SELECT count(*) AS n, count(image) AS read, min(clip_image_error(image)) AS e FROM three",
    )
    .await;
    let rows = table_rows(&text);
    assert_eq!(rows[0][..2], ["3", "3"], "{text}");
    assert!(!rows[0][2].is_empty(), "zeros are no image: {text}");
    let err = query(&ctx, "SET clip.max_image_bytes = 2147483648")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 1073741824 (1 GiB)"), "{err}");
}

/// A WebDataset member over `clip.max_image_bytes` streams past unread: a
/// NULL image counted in the scan's metrics, or an error naming it under
/// `clip.on_error = 'error'`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_webdataset_member_is_null_or_an_error() {
    let shard = webdataset_shard(&[
        (
            "big".to_string(),
            vec![("cls", b"1".to_vec()), ("png", png_bytes(200, 200, 1))],
        ),
        (
            "small".to_string(),
            vec![("cls", b"2".to_vec()), ("png", png_bytes(4, 4, 2))],
        ),
    ]);
    let dir = folder(&[("0.tar", shard)]);
    let ctx = context();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE shards STORED AS WEBDATASET LOCATION '{}/0.tar'",
            dir.path().display()
        ),
    )
    .await
    .unwrap();
    query(&ctx, "SET clip.max_image_bytes = 1000")
        .await
        .unwrap();
    let (plan, text) = query_with_plan(
        &ctx,
        "SELECT key, label, image IS NULL AS skipped FROM shards ORDER BY key",
    )
    .await;
    assert_eq!(
        table_rows(&text),
        [["big", "1", "true"], ["small", "2", "false"]],
        "{text}"
    );
    assert_eq!(metric_sum(plan.as_ref(), "oversized_members"), 1);

    query(&ctx, "SET clip.on_error = 'error'").await.unwrap();
    let err = query(&ctx, "SELECT count(image) FROM shards")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("member big.png") && err.contains("clip.max_image_bytes = 1000"),
        "{err}"
    );
}

/// One bad entry no longer loses the whole folder: a symbolic-link loop and
/// a file name that is not UTF-8 fail the listing naming them, or with
/// `skip_unreadable` are skipped while the rest is read. A link to another
/// folder of the tree is no loop: its files are read through it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_loop_or_a_bad_name_fails_the_listing_or_is_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let dir = folder(&[
        ("cat/a.png", png_bytes(20, 10, 1)),
        ("dog/b.png", png_bytes(20, 10, 2)),
    ]);
    std::os::unix::fs::symlink(dir.path(), dir.path().join("cat/loop")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("dog"), dir.path().join("cat/dogs")).unwrap();
    let bad_name = std::ffi::OsStr::from_bytes(b"bad\xff.png");
    std::fs::write(dir.path().join("dog").join(bad_name), png_bytes(20, 10, 3)).unwrap();
    let root = dir.path().display();
    let ctx = context();
    query(
        &ctx,
        &format!("CREATE EXTERNAL TABLE strict STORED AS IMAGEFOLDER LOCATION '{root}'"),
    )
    .await
    .unwrap();
    let err = query(&ctx, "SELECT count(*) FROM strict")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("skip_unreadable"), "{err}");
    assert!(
        err.contains("symbolic-link loop") || err.contains("bad"),
        "names the entry: {err}"
    );

    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE lenient STORED AS IMAGEFOLDER LOCATION '{root}' \
             OPTIONS ('skip_unreadable' 'true')"
        ),
    )
    .await
    .unwrap();
    let text = query_text(
        &ctx,
        "SELECT label, count(*) AS n, count(clip_image_error(image)) AS bad FROM lenient \
         GROUP BY label ORDER BY label",
    )
    .await;
    // cat/a.png, dog/b.png, and b.png again through cat/dogs (label "dogs").
    assert_eq!(
        table_rows(&text),
        [["cat", "1", "0"], ["dog", "1", "0"], ["dogs", "1", "0"]],
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clauses_the_image_formats_have_no_use_for_are_refused_not_ignored() {
    let ctx = context();
    for format in ["IMAGEFOLDER", "WEBDATASET", "CIFAR"] {
        for (clause, expected) in [
            (
                "PARTITIONED BY (p)",
                "take no PARTITIONED BY (p): their columns come from the format; filter on \
                 them in the query instead",
            ),
            (
                "WITH ORDER (path DESC)",
                "take no WITH ORDER: their rows come in no declared order; write ORDER BY in \
                 the query instead",
            ),
        ] {
            let sql =
                format!("CREATE EXTERNAL TABLE t STORED AS {format} {clause} LOCATION '/tmp'");
            let err = query(&ctx, &sql).await.unwrap_err().to_string();
            assert!(
                err.contains(&format!("{format} tables {expected}")),
                "{sql}: {err}"
            );
        }
        let sql = format!("CREATE UNBOUNDED EXTERNAL TABLE t STORED AS {format} LOCATION '/tmp'");
        let err = query(&ctx, &sql).await.unwrap_err().to_string();
        assert!(err.contains("leave out UNBOUNDED"), "{sql}: {err}");
    }
    let sql = "CREATE EXTERNAL TABLE t (path VARCHAR, label VARCHAR, image BYTEA, PRIMARY KEY (path)) \
               STORED AS IMAGEFOLDER LOCATION '/tmp'";
    let err = query(&ctx, sql).await.unwrap_err().to_string();
    assert!(err.contains("take no constraints"), "{err}");
}
