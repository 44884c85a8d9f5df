//! The same SQL on a Ballista cluster: a scheduler and an executor started
//! in process (loopback only) run benchmark files, the suite and ad hoc
//! queries, and give exactly what one process gives.
#![cfg(feature = "ballista")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::*;
use datafusion::execution::SessionStateBuilder;
use datafusion_clip::distributed::standalone_context;

fn stdout_of(run: &Output, what: &str) -> String {
    assert!(
        run.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}

/// A client session on a fresh in-process cluster with two task slots.
async fn cluster() -> datafusion::prelude::SessionContext {
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(datafusion_clip::session_config())
        .build();
    standalone_context(state, 2).await.unwrap()
}

#[test]
fn benchmark_files_give_the_same_results_on_a_cluster() {
    let work = tempfile::tempdir().unwrap();
    let model = format!("model={}", tiny_model());
    let sqldata = format!("sqldata={ROOT}/sql/data");
    // CIFAR-10: embeddings, three classifiers, summary and per-class
    // recall; Country211: the region join on top.
    for slug in ["cifar10", "country211"] {
        let shards = work.path().join(slug);
        standin_shards(&shards, class_count(slug));
        let data = format!("data={}/", shards.display());
        let file = format!("{ROOT}/sql/benchmarks/{slug}.sql");
        let mut args = vec!["-q", "--format", "csv", "-f", file.as_str()];
        args.extend(["--param", &data, "--param", &model, "--param", &sqldata]);
        let local = stdout_of(&clip_sql(&args), slug);
        args.extend(["--ballista", "standalone"]);
        let distributed = stdout_of(&clip_sql(&args), slug);
        assert!(
            local.contains("model,dataset,split,n,n_failed,acc1,acc5,mean_per_class_recall"),
            "{local}"
        );
        assert_eq!(distributed, local, "{slug}");
    }
    // And it did run on the cluster: the plan has stages.
    let shards = work.path().join("cifar10");
    let data = format!("data={}/", shards.display());
    let file = format!("{ROOT}/sql/benchmarks/cifar10.sql");
    let explain = stdout_of(
        &clip_sql(&[
            "-q",
            "--format",
            "csv",
            "-f",
            &file,
            "--param",
            &data,
            "--param",
            &model,
            "--param",
            &sqldata,
            "--ballista",
            "standalone",
            "-c",
            "EXPLAIN SELECT count(*) FROM cifar10_predictions",
        ]),
        "explain",
    );
    assert!(explain.contains("distributed_plan"), "{explain}");
    assert!(explain.contains("ShuffleWriterExec"), "{explain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_on_a_cluster_writes_the_same_predictions() {
    let work = tempfile::tempdir().unwrap();
    let shards = work.path().join("cifar10");
    standin_shards(&shards, class_count("cifar10"));
    let data = format!("cifar10={}/", shards.display());
    let model = tiny_model();
    let run = |out: &Path, extra: &[&str]| {
        let mut extra = extra.to_vec();
        extra.push("--quiet");
        run_suite(out, &model, "cifar10", std::slice::from_ref(&data), &extra)
    };
    let (local, distributed) = (work.path().join("local"), work.path().join("cluster"));
    let local_tables = stdout_of(&run(&local, &[]), "local suite");
    let cluster_tables = stdout_of(
        &run(&distributed, &["--ballista", "standalone"]),
        "suite on a cluster",
    );
    assert_eq!(cluster_tables, local_tables);

    let ctx = context();
    let mut seen = Vec::new();
    for (name, out) in [("local", &local), ("cluster", &distributed)] {
        ctx.register_parquet(
            name,
            out.join("predictions").to_str().unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
        seen.push(
            query_text(
                &ctx,
                &format!(
                    "SELECT model, dataset, key, label_index, predicted, top5, probability, \
                            predicted_one_template FROM {name} ORDER BY key"
                ),
            )
            .await,
        );
    }
    assert_eq!(table_rows(&seen[0]).len(), 6, "{}", seen[0]);
    assert_eq!(seen[1], seen[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_tables_settings_and_functions_reach_the_executors() {
    let pets = pets_folder();
    let broken = folder(&[
        ("cat/good.png", png_bytes(40, 30, 7)),
        ("cat/broken.png", b"\x89PNG\r\n\x1a\nnot really".to_vec()),
    ]);
    let model = tiny_model();
    let local = context();
    let remote = cluster().await;
    for ctx in [&local, &remote] {
        for (name, dir) in [("pets", &pets), ("broken", &broken)] {
            query(
                ctx,
                &format!(
                    "CREATE EXTERNAL TABLE {name} STORED AS IMAGEFOLDER LOCATION '{}/'",
                    dir.path().display()
                ),
            )
            .await
            .unwrap();
        }
    }

    // An image table and every kind of CLIP function, planned here and run
    // on the executor.
    let sql = format!(
        "SELECT path, label, \
                clip_zero_shot('{model}', image, ['cat', 'dog'])['label_index'] AS p, \
                round(cosine_similarity(clip_embed_image('{model}', image), \
                                        clip_embed_text('{model}', 'a photo of a cat')), 5) AS s, \
                array_argmax(clip_zero_shot_probs('{model}', image, ['cat', 'dog'])) AS a \
         FROM pets ORDER BY path"
    );
    let expected = query_text(&local, &sql).await;
    assert_eq!(table_rows(&expected).len(), 5, "{expected}");
    let plan = query_text(&remote, &format!("EXPLAIN {sql}")).await;
    assert!(plan.contains("distributed_plan"), "{plan}");
    assert!(plan.contains("ImageFolderExec"), "{plan}");
    assert_eq!(query_text(&remote, &sql).await, expected);
    // EXPLAIN ANALYZE runs the query on the cluster (cancelled when dropped,
    // as a query is: tests/process_wide/cluster.rs) and shows its stages.
    let analyzed = query_text(&remote, &format!("EXPLAIN ANALYZE {sql}")).await;
    assert!(analyzed.contains("ImageFolderExec"), "{analyzed}");

    // A bad image is a NULL with its reason, by default...
    let sql = format!(
        "SELECT path, clip_embed_image('{model}', image) IS NULL AS failed, \
                clip_image_error('{model}', image) IS NOT NULL AS has_reason \
         FROM broken ORDER BY path"
    );
    let text = query_text(&remote, &sql).await;
    assert_eq!(text, query_text(&local, &sql).await);
    assert!(text.contains("broken.png | true   | true"), "{text}");
    // ...and with clip.on_error set on the client, an error naming the row
    // from the executor: the client's settings travel with the query.
    query(&remote, "SET clip.on_error = 'error'").await.unwrap();
    let err = query(
        &remote,
        &format!("SELECT clip_embed_image('{model}', image) FROM broken"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("broken.png"), "{err}");

    // A table function's table cannot travel (Ballista 55): planning says
    // which table and what to write instead, not an internal error at run
    // time.
    for sql in [
        "SELECT count(*) FROM generate_series(1, 3)",
        "EXPLAIN ANALYZE SELECT count(*) FROM generate_series(1, 3)",
    ] {
        let err = query(&remote, sql).await.unwrap_err().to_string();
        assert!(
            err.starts_with("Error during planning: table generate_series() cannot be sent"),
            "{sql}: {err}"
        );
        assert!(err.contains("unnest(range(1, 51))"), "{sql}: {err}");
    }

    // clip_models() is a table made on the client; it travels too.
    let models = query_text(&remote, "SELECT count(*) AS n FROM clip_models()").await;
    assert_eq!(
        models,
        query_text(&local, "SELECT count(*) AS n FROM clip_models()").await
    );
}

/// A process that is killed when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `command`'s output, or a failed test after `limit` (a cluster that never
/// runs the query must not hang CI).
fn output_within(mut command: Command, limit: Duration) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("no answer from the cluster within {limit:?}");
        }
    }
}

#[test]
fn scheduler_and_executor_processes_run_a_benchmark_file() {
    // `clip-sql scheduler` on a free port it reports once it accepts
    // connections...
    let mut scheduler = Killed(
        Command::new(env!("CARGO_BIN_EXE_clip-sql"))
            .current_dir(crate::common::repo())
            .args(["scheduler", "--port", "0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(scheduler.0.stderr.take().unwrap()).lines();
    let listening = lines
        .find_map(|line| {
            let line = line.ok()?;
            line.contains("listening on").then_some(line)
        })
        .expect("the scheduler exited without listening");
    let url = listening
        .split_whitespace()
        .find(|word| word.starts_with("df://"))
        .unwrap()
        .to_string();
    let scheduler_address = url.trim_start_matches("df://").to_string();
    // ...an executor computing on the CPU...
    let _executor = Killed(
        Command::new(env!("CARGO_BIN_EXE_clip-sql"))
            .current_dir(crate::common::repo())
            .args([
                "executor",
                "--scheduler",
                &scheduler_address,
                "--device",
                "cpu",
            ])
            .args(["--port", &free_port().to_string()])
            .args(["--grpc-port", &free_port().to_string()])
            .args(["--vcores", "2"])
            .env("HF_HUB_OFFLINE", "1")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // ...and a client: the job waits for the executor to register.
    let work = tempfile::tempdir().unwrap();
    standin_shards(work.path(), class_count("cifar10"));
    let data = format!("data={}/", work.path().display());
    let model = format!("model={}", tiny_model());
    let sqldata = format!("sqldata={ROOT}/sql/data");
    let file = format!("{ROOT}/sql/benchmarks/cifar10.sql");
    let args = [
        "-q", "--format", "csv", "-f", &file, "--param", &data, "--param", &model, "--param",
        &sqldata,
    ];
    let local = stdout_of(&clip_sql(&args), "local");
    let mut client = Command::new(env!("CARGO_BIN_EXE_clip-sql"));
    client.current_dir(crate::common::repo());
    client
        .args(args)
        .args(["--ballista", &url])
        .env("HF_HUB_OFFLINE", "1");
    let distributed = stdout_of(&output_within(client, Duration::from_secs(300)), "client");
    assert_eq!(distributed, local);
}

#[test]
fn an_executor_refuses_a_device_it_cannot_open() {
    if candle_core::utils::cuda_is_available() {
        return;
    }
    let run = clip_sql(&[
        "executor",
        "--device",
        "cuda:0",
        "--scheduler",
        "localhost:1",
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("--device cuda:0"), "{stderr}");
    assert!(stderr.contains("--features cuda"), "{stderr}");
}

#[test]
fn a_wrong_cluster_address_is_a_clear_error() {
    let run = clip_sql(&["--ballista", "http://localhost:50050", "-c", "SELECT 1"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("df://HOST[:PORT]"), "{stderr}");
    assert!(stderr.contains("standalone"), "{stderr}");
    // Nothing listens on port 1: said before any SQL runs.
    let run = clip_sql(&["--ballista", "df://127.0.0.1:1", "-c", "SELECT 1"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("cannot reach the Ballista scheduler at df://127.0.0.1:1"),
        "{stderr}"
    );
}

/// Ctrl-C during `clip-sql --ballista … -c` cancels the run's jobs on the
/// cluster and exits with status 130; killed outright, the client would
/// leave the cluster computing what nobody reads.
#[cfg(unix)]
#[test]
fn ctrl_c_in_a_cluster_run_cancels_its_job_and_exits() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::Instant;

    let dir = png_folder(400);
    let m = tiny_model();
    let create = format!(
        "CREATE EXTERNAL TABLE t STORED AS IMAGEFOLDER LOCATION '{}/'",
        dir.path().display()
    );
    // 20,000 passes of one image: far longer than the test waits. (A
    // VALUES list, not generate_series: Ballista 55 cannot send a table
    // function's table to the scheduler.)
    let fifty: Vec<String> = (1..=50).map(|i| format!("({i})")).collect();
    let long = format!(
        "SELECT count(clip_embed_image('{m}', image)) AS embedded \
         FROM t CROSS JOIN (VALUES {}) AS copies(n)",
        fifty.join(", ")
    );
    let mut client = Killed(
        Command::new(env!("CARGO_BIN_EXE_clip-sql"))
            .current_dir(crate::common::repo())
            .args(["--ballista", "standalone", "-q", "--format", "csv"])
            .args(["-c", "SET clip.batch_size = 1", "-c", &create, "-c", &long])
            .env("HF_HUB_OFFLINE", "1")
            // Ballista's client says when the scheduler runs its job.
            .env(
                "RUST_LOG",
                "warn,ballista_core::execution_plans::distributed_query=info",
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(client.0.stdout.take().unwrap()).lines();
    let (lines, stderr_lines) = std::sync::mpsc::channel();
    let stderr_reader = BufReader::new(client.0.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr_reader.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // Ctrl-C once the long statement's job runs on the cluster.
    let mut stderr = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let line = stderr_lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no job ran within a minute: {stderr}"));
        stderr.push_str(&line);
        stderr.push('\n');
        if let Some(job) = line
            .strip_prefix("info: Job ")
            .and_then(|rest| rest.strip_suffix(" is running..."))
        {
            break job.to_string();
        }
    };
    let sent = Command::new("kill")
        .args(["-INT", &client.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = loop {
        if let Some(status) = client.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "no exit within a minute of Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // The reader thread ends with the process's stderr.
    stderr.extend(stderr_lines.iter().map(|line| line + "\n"));
    assert_eq!(
        status.code(),
        Some(130),
        "{status:?} (signal {:?}): {stderr}",
        status.signal()
    );
    assert!(
        stderr.contains("Interrupted: cancelling this run's jobs on the cluster"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("cancelled job {job}")), "{stderr}");
    let rest: Vec<String> = stdout.map_while(Result::ok).collect();
    assert!(!rest.iter().any(|line| line == "20000"), "{rest:?}");
}
