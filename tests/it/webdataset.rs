//! `STORED AS WEBDATASET`: tar shards written here with the `tar` crate in
//! CLIP_benchmark's layout (`<key>.cls`, `<key>.webp|jpg|png`, extras),
//! read back through SQL.

use crate::common::*;
use datafusion::prelude::SessionContext;

/// Shard `s` of three: 4 samples each, labels `i % 3`, a caption, and one
/// sample per shard stored as PNG instead of JPEG.
fn sample(s: usize, i: usize) -> Sample {
    let n = s * 4 + i;
    let image: (&'static str, Vec<u8>) = if i == 3 {
        ("png", png_bytes(40, 30, n as u32))
    } else {
        ("jpg", jpeg_bytes(40, 30, n as u32))
    };
    (
        format!("s{n:04}"),
        vec![
            ("cls", format!("{}\n", n % 3).into_bytes()),
            image,
            ("txt", format!("caption {n}").into_bytes()),
        ],
    )
}

fn three_shards() -> tempfile::TempDir {
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|s| {
            let samples: Vec<Sample> = (0..4).map(|i| sample(s, i)).collect();
            (format!("test/{s}.tar"), webdataset_shard(&samples))
        })
        .collect();
    let mut all: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    all.push(("classnames.txt", b"zero\none\ntwo\n".to_vec()));
    folder(&all)
}

/// `CREATE EXTERNAL TABLE <name> STORED AS WEBDATASET LOCATION '<location>'`,
/// with `OPTIONS ('skip_unreadable' 'true')` when `skip_unreadable`.
async fn create_shards_table(
    ctx: &SessionContext,
    name: &str,
    location: &str,
    skip_unreadable: bool,
) -> datafusion::error::Result<()> {
    let options = if skip_unreadable {
        " OPTIONS ('skip_unreadable' 'true')"
    } else {
        ""
    };
    query(
        ctx,
        &format!(
            "CREATE EXTERNAL TABLE {name} STORED AS WEBDATASET LOCATION '{location}'{options}"
        ),
    )
    .await
    .map(|_| ())
}

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    table_rows(&query_text(ctx, sql).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_by_directory_brace_list_glob_and_file_give_the_same_samples() {
    let dir = three_shards();
    let root = dir.path().display();
    let ctx = context();
    query(&ctx, "SET clip.batch_size = 1").await.unwrap();
    query(&ctx, "SET datafusion.execution.target_partitions = 2")
        .await
        .unwrap();
    for (name, location) in [
        ("by_dir", format!("{root}/test/")),
        ("by_braces", format!("{root}/test/{{0..2}}.tar")),
        ("by_glob", format!("{root}/test/*.tar")),
    ] {
        query(
            &ctx,
            &format!("CREATE EXTERNAL TABLE {name} STORED AS WEBDATASET LOCATION '{location}'"),
        )
        .await
        .unwrap();
        let got = rows(
            &ctx,
            &format!(
                "SELECT key, label, txt, clip_image_error(image) IS NULL AS has_image FROM {name} ORDER BY key"
            ),
        )
        .await;
        assert_eq!(got.len(), 12, "{name}");
        for (n, row) in got.iter().enumerate() {
            assert_eq!(
                row,
                &[
                    format!("s{n:04}"),
                    (n % 3).to_string(),
                    format!("caption {n}"),
                    "true".to_string()
                ],
                "{name}"
            );
        }
    }
    query(
        &ctx,
        &format!("CREATE EXTERNAL TABLE one STORED AS WEBDATASET LOCATION '{root}/test/1.tar'"),
    )
    .await
    .unwrap();
    let got = rows(&ctx, "SELECT min(key), max(key), count(*) FROM one").await;
    assert_eq!(got[0], ["s0004", "s0007", "4"]);

    // The images are the bytes written, and the CLIP functions read them.
    let got = rows(
        &ctx,
        &format!(
            "SELECT count(clip_zero_shot('{}', image, ['zero', 'one', 'two'])) AS n FROM by_dir",
            tiny_model()
        ),
    )
    .await;
    assert_eq!(got[0], ["12"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_members_are_null_and_bad_labels_name_the_sample() {
    let samples: Vec<Sample> = vec![
        ("a".into(), vec![("jpg", jpeg_bytes(20, 20, 1))]),
        ("b".into(), vec![("cls", b"2".to_vec())]),
        (
            "c".into(),
            vec![
                ("cls", b"1".to_vec()),
                ("webp", b"not really webp".to_vec()),
            ],
        ),
    ];
    let dir = folder(&[("x/0.tar", webdataset_shard(&samples))]);
    let ctx = context();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE w STORED AS WEBDATASET LOCATION '{}/x/'",
            dir.path().display()
        ),
    )
    .await
    .unwrap();
    let got = rows(
        &ctx,
        "SELECT key, label, image IS NULL AS no_image, clip_image_error(image) IS NOT NULL AS bad \
         FROM w ORDER BY key",
    )
    .await;
    assert_eq!(got[0], ["a", "", "false", "false"]);
    assert_eq!(got[1], ["b", "2", "true", "true"]);
    assert_eq!(got[2], ["c", "1", "false", "true"]);

    // With clip.on_error = 'error' the failing sample is named by its key.
    query(&ctx, "SET clip.on_error = 'error'").await.unwrap();
    let err = query(
        &ctx,
        &format!(
            "SELECT clip_embed_image('{}', image) FROM w WHERE key = 'c'",
            tiny_model()
        ),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("image 'c'"), "{err}");

    let bad = webdataset_shard(&[("z".into(), vec![("cls", b"seven".to_vec())])]);
    let dir2 = folder(&[("y/0.tar", bad)]);
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE bad STORED AS WEBDATASET LOCATION '{}/y/0.tar'",
            dir2.path().display()
        ),
    )
    .await
    .unwrap();
    let err = query(&ctx, "SELECT label FROM bad")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sample 'z'") && err.contains("'seven'"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_shards_fail_naming_the_shard_or_are_skipped_and_counted() {
    let good: Vec<Sample> = (0..4).map(|i| sample(0, i)).collect();
    let mut truncated = webdataset_shard(&(0..4).map(|i| sample(1, i)).collect::<Vec<_>>());
    truncated.truncate(truncated.len() / 2);
    let dir = folder(&[("t/0.tar", webdataset_shard(&good)), ("t/1.tar", truncated)]);
    let ctx = context();
    let location = format!("{}/t/", dir.path().display());
    create_shards_table(&ctx, "strict", &location, false)
        .await
        .unwrap();
    let err = query(&ctx, "SELECT count(*) FROM strict")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("1.tar") && err.contains("truncated"), "{err}");
    assert!(err.contains("skip_unreadable"), "{err}");

    create_shards_table(&ctx, "lenient", &location, true)
        .await
        .unwrap();
    let (plan, text) = query_with_plan(&ctx, "SELECT count(*) AS n FROM lenient").await;
    // The good shard's 4 samples and the complete samples before the cut.
    let n: usize = table_rows(&text)[0][0].parse().unwrap();
    assert!((4..8).contains(&n), "{text}");
    assert_eq!(metric_sum(plan.as_ref(), "unreadable_shards"), 1);

    // Not tar at all, and no shards.
    let dir2 = folder(&[
        ("n/0.tar", b"hello, not a tar file".repeat(50)),
        ("e/readme", vec![1]),
    ]);
    let err = query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE nt STORED AS WEBDATASET LOCATION '{}/n/'",
            dir2.path().display()
        ),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("0.tar") && err.contains("checksum"), "{err}");
    let err = query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE none STORED AS WEBDATASET LOCATION '{}/e/'",
            dir2.path().display()
        ),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("no WebDataset shards"), "{err}");
}

/// A first shard cut inside a member: the table still opens with
/// `skip_unreadable` (its columns come from the samples before the cut, and
/// without the option the error says what to set), and every sample before
/// the damaged one is read, as webdataset reads them; the damaged one is
/// left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_cut_inside_a_member_keeps_the_samples_before_it() {
    let whole = webdataset_shard(&(0..4).map(|i| sample(0, i)).collect::<Vec<_>>());
    // One byte into the data of sample s0002's first member.
    let cut = tar::Archive::new(&whole[..])
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|member| {
            member
                .path()
                .unwrap()
                .to_string_lossy()
                .starts_with("s0002.")
        })
        .unwrap()
        .raw_file_position() as usize
        + 1;
    let dir = folder(&[("t/0.tar", whole[..cut].to_vec())]);
    let location = format!("{}/t/", dir.path().display());
    let ctx = context();
    let err = create_shards_table(&ctx, "strict", &location, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("0.tar") && err.contains("truncated"), "{err}");
    assert!(err.contains("skip_unreadable"), "{err}");

    create_shards_table(&ctx, "lenient", &location, true)
        .await
        .unwrap();
    let (plan, text) = query_with_plan(
        &ctx,
        "SELECT key, label, txt, image IS NOT NULL AS has_image FROM lenient ORDER BY key",
    )
    .await;
    assert_eq!(
        table_rows(&text),
        vec![
            vec!["s0000", "0", "caption 0", "true"],
            vec!["s0001", "1", "caption 1", "true"],
        ],
        "{text}"
    );
    assert_eq!(metric_sum(plan.as_ref(), "unreadable_shards"), 1);
}

/// A plain HTTP server for files (GET and HEAD), as a stand-in for a
/// dataset hub: `/wds/<name>` serves `files[name]`, anything else is 404
/// with an HTML page, as web servers answer; a listing (WebDAV's PROPFIND)
/// is 405, as nginx answers it.
fn serve_files(files: std::collections::HashMap<String, Vec<u8>>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let mut parts = request.split_whitespace();
            let method = parts.next().unwrap_or("");
            let path = parts.next().unwrap_or("");
            let found = path.strip_prefix("/wds/").and_then(|n| files.get(n));
            let Some(body) = found.filter(|_| method != "PROPFIND") else {
                let status = if method == "PROPFIND" {
                    "405 Not Allowed"
                } else {
                    "404 Not Found"
                };
                let page = format!(
                    "<!DOCTYPE html>\n<html><head><title>{status}</title></head>\n\
                     <body><h1>{status}</h1></body></html>\n"
                );
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{page}",
                        page.len()
                    )
                    .as_bytes(),
                );
                continue;
            };
            let header = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nlast-modified: Thu, 26 Nov 2026 10:00:00 GMT\r\n\
                 etag: \"{}\"\r\nconnection: close\r\n\r\n",
                body.len(),
                body.len()
            );
            let _ = stream.write_all(header.as_bytes());
            if method == "GET" {
                let _ = stream.write_all(body);
            }
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_shards_by_count_file_or_brace_list_and_readable_errors() {
    let mut files = std::collections::HashMap::new();
    for s in 0..2 {
        let samples: Vec<Sample> = (0..4).map(|i| sample(s, i)).collect();
        files.insert(format!("test/{s}.tar"), webdataset_shard(&samples));
    }
    files.insert("test/nshards.txt".to_string(), b"2\n".to_vec());
    let address = serve_files(files);
    let ctx = context();
    // CLIP_benchmark's layout: the directory's nshards.txt names the shards.
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE by_count STORED AS WEBDATASET LOCATION '{address}/wds/test/'"
        ),
    )
    .await
    .unwrap();
    let got = rows(&ctx, "SELECT count(*), max(key) FROM by_count").await;
    assert_eq!(got[0], ["8", "s0007"]);
    let err = query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE no_count STORED AS WEBDATASET LOCATION '{address}/wds/train/'"
        ),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("nshards.txt") && err.contains("{0..9}.tar"),
        "{err}"
    );
    query(
        &ctx,
        &format!("CREATE EXTERNAL TABLE remote STORED AS WEBDATASET LOCATION '{address}/wds/test/{{0..1}}.tar'"),
    )
    .await
    .unwrap();
    let got = rows(
        &ctx,
        "SELECT count(*), count(label), min(key), max(key), max(txt) FROM remote",
    )
    .await;
    assert_eq!(got[0], ["8", "8", "s0000", "s0007", "caption 7"]);

    // Shard 2 does not exist: the error names it; skipping counts it.
    query(
        &ctx,
        &format!("CREATE EXTERNAL TABLE gap STORED AS WEBDATASET LOCATION '{address}/wds/test/{{0..2}}.tar'"),
    )
    .await
    .unwrap();
    let err = query(&ctx, "SELECT count(*) FROM gap")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("test/2.tar"), "{err}");
    // The server's HTML page is left out of the message, its status kept.
    assert!(
        err.contains("404 Not Found (the server's HTML error page left out)"),
        "{err}"
    );
    assert!(!err.contains("<html>"), "{err}");
    // An image folder over http(s) needs a listing most servers refuse:
    // the error says so and what to do.
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE folder STORED AS IMAGEFOLDER LOCATION '{address}/wds/test/'"
        ),
    )
    .await
    .unwrap();
    let err = query(&ctx, "SELECT count(*) FROM folder")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot list image folder"), "{err}");
    assert!(
        err.contains("405 Method Not Allowed (the server's HTML error page left out)"),
        "{err}"
    );
    assert!(
        err.contains("WebDAV") && err.contains("WEBDATASET shards"),
        "{err}"
    );
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE gap_ok STORED AS WEBDATASET LOCATION '{address}/wds/test/{{0..2}}.tar' \
             OPTIONS ('skip_unreadable' 'true')"
        ),
    )
    .await
    .unwrap();
    let got = rows(&ctx, "SELECT count(*) FROM gap_ok").await;
    assert_eq!(got[0], ["8"]);
}

/// A local file system that counts the bytes its readers have pulled.
#[derive(Debug)]
struct CountingStore {
    inner: object_store::local::LocalFileSystem,
    pulled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        use futures::StreamExt;
        let result = self.inner.get_opts(location, options).await?;
        let (meta, range, attributes) = (
            result.meta.clone(),
            result.range.clone(),
            result.attributes.clone(),
        );
        let pulled = self.pulled.clone();
        let stream = result.into_stream().map(move |chunk| {
            if let Ok(bytes) = &chunk {
                pulled.fetch_add(bytes.len(), std::sync::atomic::Ordering::SeqCst);
            }
            chunk
        });
        Ok(object_store::GetResult {
            payload: object_store::GetResultPayload::Stream(stream.boxed()),
            meta,
            range,
            attributes,
        })
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_far_larger_than_a_batch_is_streamed_not_read_whole() {
    use futures::StreamExt;
    // 48 samples of 1 MiB each: a 48 MiB shard.
    const MEMBER: usize = 1 << 20;
    let samples: Vec<Sample> = (0..48u32)
        .map(|i| {
            (
                format!("{i:04}"),
                vec![
                    ("cls", (i % 3).to_string().into_bytes()),
                    ("bin", vec![i as u8; MEMBER]),
                ],
            )
        })
        .collect();
    let shard = webdataset_shard(&samples);
    let shard_size = shard.len();
    let dir = folder(&[("big/0.tar", shard)]);

    let ctx = context();
    let pulled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    ctx.runtime_env().register_object_store(
        &url::Url::parse("file://").unwrap(),
        std::sync::Arc::new(CountingStore {
            inner: object_store::local::LocalFileSystem::new(),
            pulled: pulled.clone(),
        }),
    );
    query(&ctx, "SET datafusion.execution.batch_size = 4")
        .await
        .unwrap();
    query(&ctx, "SET datafusion.execution.target_partitions = 1")
        .await
        .unwrap();
    query(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE big STORED AS WEBDATASET LOCATION '{}/big/'",
            dir.path().display()
        ),
    )
    .await
    .unwrap();
    // Creating the table read the first samples for the schema.
    pulled.store(0, std::sync::atomic::Ordering::SeqCst);
    let mut stream = ctx
        .sql("SELECT key, label, bin FROM big")
        .await
        .unwrap()
        .execute_stream()
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.num_rows(), 4);
    let read_for_first_batch = pulled.load(std::sync::atomic::Ordering::SeqCst);
    // The first 4 samples are 4 MiB; the reader is at most a sample and a
    // read chunk ahead, nowhere near the 48 MiB shard.
    assert!(
        read_for_first_batch < 8 * MEMBER,
        "{read_for_first_batch} of {shard_size} bytes read before the first batch"
    );
    let mut rows = first.num_rows();
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        assert!(batch.num_rows() <= 4);
        rows += batch.num_rows();
    }
    assert_eq!(rows, 48);
    assert!(pulled.load(std::sync::atomic::Ordering::SeqCst) >= shard_size - 1024);
}

/// Samples are formed as webdataset 1.0.2 forms them (and so as
/// CLIP_benchmark reads a shard): hidden files (the `._x.jpg` macOS's tar
/// adds) and `__metadata__` are no samples; of several image members the
/// image is CLIP_benchmark's choice (webp, png, jpg, jpeg: the first
/// present), not the first in the shard; a second member of one extension
/// in a sample is an error, as webdataset raises one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_are_formed_as_webdataset_forms_them() {
    use datafusion::arrow::array::AsArray;

    let png = png_bytes(40, 30, 1);
    let shard = webdataset_shard(&[
        (String::new(), vec![("_s0000.jpg", b"AppleDouble".to_vec())]),
        (
            "s0000".to_string(),
            vec![
                ("jpg", jpeg_bytes(50, 20, 2)),
                ("png", png.clone()),
                ("cls", b"3".to_vec()),
            ],
        ),
        ("__meta__/info".to_string(), vec![("json", b"{}".to_vec())]),
        (
            "s0001".to_string(),
            vec![("cls", b"4".to_vec()), ("jpeg", jpeg_bytes(30, 30, 3))],
        ),
        (String::new(), vec![("DS_Store", b"junk".to_vec())]),
    ]);
    let duplicate = webdataset_shard(&[(
        "s0".to_string(),
        vec![
            ("png", png.clone()),
            ("cls", b"1".to_vec()),
            ("png", png.clone()),
        ],
    )]);
    let dir = folder(&[("odd/0.tar", shard), ("dup/0.tar", duplicate)]);
    let ctx = context();
    let root = dir.path().display();
    create_shards_table(&ctx, "odd", &format!("{root}/odd/"), false)
        .await
        .unwrap();
    let columns = query_text(&ctx, "SELECT * FROM odd LIMIT 0").await;
    assert!(
        !columns.contains("ds_store") && !columns.contains("json"),
        "{columns}"
    );
    let batches = query(&ctx, "SELECT key, label, image FROM odd ORDER BY key")
        .await
        .unwrap();
    let batch = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let keys: Vec<&str> = batch
        .column(0)
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(keys, ["s0000", "s0001"]);
    let labels: Vec<i32> = batch
        .column(1)
        .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(labels, [3, 4]);
    assert_eq!(
        batch.column(2).as_binary::<i32>().value(0),
        png.as_slice(),
        "the png member, preferred to the jpg before it"
    );

    create_shards_table(&ctx, "dup", &format!("{root}/dup/"), false)
        .await
        .unwrap();
    let err = query(&ctx, "SELECT count(*) FROM dup")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sample 's0' has a second '.png' member (s0.png)"),
        "{err}"
    );
    create_shards_table(&ctx, "dup_skipped", &format!("{root}/dup/"), true)
        .await
        .unwrap();
    let got = rows(&ctx, "SELECT count(*) FROM dup_skipped").await;
    assert_eq!(got[0], ["0"]);
}
