//! The `clip-sql` binary: `-c`, `-f`, settings, exit codes.

use std::process::Output;

use crate::common::*;

/// The interactive shell in `dir`, reading statements from a pipe.
fn spawn_shell(dir: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_clip-sql"))
        .current_dir(dir)
        .args(["-q", "--format", "csv"])
        .env("HF_HUB_OFFLINE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn command_prints_a_text_embedding() {
    let sql = format!(
        "SELECT clip_embed_text('{}', 'a photo of a cat') AS e",
        tiny_model()
    );
    let out = clip_sql(&["-q", "--format", "json", "-c", &sql]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(stdout(&out).trim()).expect("JSON output");
    let e: Vec<f64> = rows[0]["e"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(e.len(), TINY_DIM);
    let norm: f64 = e.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    assert!(
        !stderr(&out).contains("[clip]"),
        "no progress line when stderr is not a terminal"
    );
}

#[test]
fn file_runs_zero_shot_over_an_image_folder_and_groups_by_label() {
    let images = pets_folder();
    let model = tiny_model();
    let script = format!(
        "-- ad hoc zero-shot over a folder
CREATE EXTERNAL TABLE pets STORED AS IMAGEFOLDER LOCATION '{dir}';
SET clip.batch_size = 2;
SELECT path, clip_zero_shot('{model}', image, ['cat', 'dog'])['label'] AS predicted FROM pets ORDER BY path;
SELECT label, avg(CASE WHEN clip_zero_shot('{model}', image, ['cat', 'dog'])['label'] = label THEN 1.0 ELSE 0.0 END) AS acc1,
       count(*) AS n
FROM pets GROUP BY label ORDER BY label;
",
        dir = images.path().display()
    );
    let sql_dir = tempfile::tempdir().unwrap();
    let file = sql_dir.path().join("pets.sql");
    std::fs::write(&file, script).unwrap();
    let out = clip_sql(&["-q", "--format", "csv", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    // One prediction per image, then one accuracy row per label.
    let predictions: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(".png,") || l.contains(".jpg,") || l.contains(".jpeg,"))
        .collect();
    assert_eq!(predictions.len(), 5, "{text}");
    assert!(
        predictions
            .iter()
            .all(|l| l.ends_with(",cat") || l.ends_with(",dog")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("cat,") && l.ends_with(",3")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("dog,") && l.ends_with(",2")),
        "{text}"
    );
}

#[test]
fn a_failing_statement_in_a_file_fails_the_run() {
    let sql_dir = tempfile::tempdir().unwrap();
    let file = sql_dir.path().join("broken.sql");
    std::fs::write(
        &file,
        "SELECT 1;\nSELECT clip_embed_text('no-such-model', 'x');\nSELECT 2;\n",
    )
    .unwrap();
    let out = clip_sql(&["-q", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unknown model 'no-such-model'"), "{err}");
    assert!(err.contains("broken.sql"), "{err}");
}

#[test]
fn settings_work_from_the_command_line() {
    let out = clip_sql(&[
        "-q",
        "--format",
        "csv",
        "-c",
        "SET clip.batch_size = 3",
        "-c",
        "SELECT value FROM information_schema.df_settings WHERE name = 'clip.batch_size'",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).lines().any(|l| l == "3"), "{}", stdout(&out));
    let out = clip_sql(&["-q", "-c", "SET clip.dtype = 'f8'"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("clip.dtype must be"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_suite_of_zero_images_is_refused_before_it_runs() {
    let out = clip_sql(&["suite", "--limit", "0", "--out", "/no/such/results"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("'--limit <LIMIT>'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_sql_file_is_reported() {
    let out = clip_sql(&["-f", "/no/such/file.sql"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no such SQL file"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bench_writes_the_efficiency_table_and_the_end_to_end_split() {
    let images = folder(&[
        ("a/1.jpg", jpeg_bytes(500, 375, 1)),
        ("a/2.jpg", jpeg_bytes(500, 375, 2)),
        ("b/3.png", png_bytes(64, 48, 3)),
    ]);
    let out_dir = tempfile::tempdir().unwrap();
    let model = tiny_model();
    let out = clip_sql(&[
        "bench",
        "--models",
        &model,
        "--batch-sizes",
        "1,2",
        "--text-batch",
        "4",
        "--seconds",
        "0.05",
        "--images",
        images.path().to_str().unwrap(),
        "--output",
        out_dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("latency ms") && text.contains("end to end"),
        "{text}"
    );

    let table = std::fs::read_to_string(out_dir.path().join("efficiency.csv")).unwrap();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "one row per batch size: {table}");
    for row in rows {
        let fields: Vec<&str> = row.split(',').collect();
        assert_eq!(fields[1], "cpu");
        assert!(fields[7].parse::<f64>().unwrap() > 0.0, "images/s in {row}");
        assert!(
            fields[9].parse::<f64>().unwrap() > 0.0,
            "prompts/s in {row}"
        );
    }
    let e2e = std::fs::read_to_string(out_dir.path().join("end_to_end.csv")).unwrap();
    let values: Vec<&str> = e2e.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(values[1], "3", "every image embedded: {e2e}");
    // The model ran 3 rows, in at least one pass.
    assert!(values[8].parse::<u64>().unwrap() >= 1);
    assert_eq!(values[9], "3");

    // A second run into the same folder stops before measuring, the first
    // run's figures untouched; --overwrite replaces them.
    let again = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--models",
            &model,
            "--batch-sizes",
            "1",
            "--text-batch",
            "4",
            "--seconds",
            "0.05",
            "--output",
            out_dir.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        clip_sql(&args)
    };
    let refused = again(&[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("efficiency.csv is there from an earlier run; pass --overwrite"),
        "{}",
        stderr(&refused)
    );
    assert!(
        !stderr(&refused).contains("measuring"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("efficiency.csv")).unwrap(),
        table
    );
    let replaced = again(&["--overwrite"]);
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    let table = std::fs::read_to_string(out_dir.path().join("efficiency.csv")).unwrap();
    assert_eq!(table.lines().count(), 2, "one batch size now: {table}");
    assert!(
        !out_dir.path().join("end_to_end.csv").exists(),
        "the earlier run's end-to-end figures left beside the new table"
    );
}

#[test]
fn bench_explains_what_it_cannot_measure() {
    let out = clip_sql(&[
        "bench",
        "--models",
        "ViT-H/14",
        "--random-weights",
        "/tmp/x",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("ViT-B/32"), "{}", stderr(&out));
    let out = clip_sql(&["bench", "--models", &tiny_model(), "--batch-sizes", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("positive"), "{}", stderr(&out));
    // An --images folder without images fails before any model is measured.
    let empty = tempfile::tempdir().unwrap();
    let out = clip_sql(&[
        "bench",
        "--models",
        &tiny_model(),
        "--images",
        empty.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no image files under"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("measuring"), "{}", stderr(&out));
}

/// `OPTIONS` of the image formats reach their factories from `-c`, `-f`
/// and the interactive shell (datafusion-cli refused them, "Specify a
/// format for TableOptions"), and a wrong one is named by the factory.
#[test]
fn image_table_options_work_in_commands_files_and_the_shell() {
    let dir = folder(&[
        ("cat/a.png", png_bytes(20, 10, 1)),
        ("cifar/test_batch.bin", cifar10_batch(&[(3, 1), (5, 2)])),
    ]);
    let root = dir.path().display();
    let create = format!(
        "CREATE EXTERNAL TABLE photos STORED AS IMAGEFOLDER LOCATION '{root}/' \
         OPTIONS ('skip_unreadable' 'true');
         CREATE EXTERNAL TABLE c STORED AS CIFAR LOCATION '{root}/cifar/' OPTIONS ('variant' '10');
         SELECT (SELECT count(*) FROM photos) AS photos, (SELECT count(*) FROM c) AS records;"
    );
    let file = dir.path().join("options.sql");
    std::fs::write(&file, &create).unwrap();
    for way in [["-c", create.as_str()], ["-f", file.to_str().unwrap()]] {
        let out = clip_sql(&[&["-q", "--format", "csv"][..], &way[..]].concat());
        assert!(out.status.success(), "{way:?}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), "photos,records\n1,2", "{way:?}");
    }

    // The shell, reading its statements from a pipe.
    let mut shell = spawn_shell(dir.path());
    {
        use std::io::Write;
        let mut stdin = shell.stdin.take().unwrap();
        writeln!(stdin, "{}", create.replace('\n', " ")).unwrap();
        writeln!(stdin, "\\q").unwrap();
    }
    let out = shell.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("photos,records\n1,2"),
        "{}",
        stdout(&out)
    );
    assert!(!stderr(&out).contains("rror"), "{}", stderr(&out));

    let out = clip_sql(&[
        "-q",
        "-c",
        &format!(
            "CREATE EXTERNAL TABLE c STORED AS CIFAR LOCATION '{root}/cifar/' \
             OPTIONS ('variant' '1000')"
        ),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("CIFAR option 'variant' must be '10' or '100'"),
        "{}",
        stderr(&out)
    );
}

/// Ctrl-C in the shell stops the statement that is running (its CLIP work
/// included) and the prompt comes back; `\q` then exits at once.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_running_statement_and_the_shell_still_exits() {
    use std::io::{BufRead, BufReader, Write};
    use std::time::{Duration, Instant};

    let dir = png_folder(400);
    let m = tiny_model();
    let mut shell = spawn_shell(dir.path());
    let lines = {
        let (sender, lines) = std::sync::mpsc::channel::<String>();
        let stdout = BufReader::new(shell.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        lines
    };
    let mut seen = Vec::new();
    let mut wait_for = |what: &str, mut act: Box<dyn FnMut()>| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match lines.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => {
                    let found = line.contains(what);
                    seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    assert!(Instant::now() < deadline, "no '{what}' in {seen:?}")
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the shell ended before printing '{what}': {seen:?}")
                }
            }
            act();
        }
    };
    let mut stdin = shell.stdin.take().unwrap();
    // A first CLIP statement: once it answers, the shell is at its prompt
    // (listening for SIGINT; before, the signal's default would end the
    // process) and the model is loaded.
    writeln!(
        stdin,
        "SELECT cardinality(clip_embed_text('{m}', 'warm up')) AS warmed;"
    )
    .unwrap();
    wait_for("warmed", Box::new(|| {}));
    let root = dir.path().display();
    // 20,000 passes of one image (tens of seconds): long enough that the
    // interrupts below land while it runs, however slow the machine.
    writeln!(
        stdin,
        "SET clip.batch_size = 1; \
         CREATE EXTERNAL TABLE t STORED AS IMAGEFOLDER LOCATION '{root}/'; \
         SELECT count(clip_embed_image('{m}', image)) AS embedded \
         FROM t CROSS JOIN generate_series(1, 50);"
    )
    .unwrap();
    // Interrupt until the shell says it stopped the statement: a signal
    // that lands before the statement starts is not an interruption of it.
    let pid = shell.id().to_string();
    wait_for(
        "^C",
        Box::new(move || {
            let sent = std::process::Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap();
            assert!(sent.success());
        }),
    );
    writeln!(stdin, "\\q").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = shell.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the shell did not exit after \\q"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(
        !seen.iter().chain(&rest).any(|line| line == "20000"),
        "the statement ran to its end: {seen:?} {rest:?}"
    );
}

/// Ctrl-C pressed just as a statement starts stops the statement or is
/// forgotten; it never ends the shell. (The shell used to start listening
/// for SIGINT only once the statement was first polled: before that, the
/// signal's default action killed it, about one time in two.)
#[cfg(unix)]
#[test]
fn ctrl_c_as_a_statement_starts_never_ends_the_shell() {
    use std::io::{BufRead, BufReader, Write};

    let m = tiny_model();
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..5 {
        let mut shell = spawn_shell(dir.path());
        let mut stdin = shell.stdin.take().unwrap();
        let mut stdout = BufReader::new(shell.stdout.take().unwrap());
        writeln!(
            stdin,
            "SELECT cardinality(clip_embed_text('{m}', 'warm up')) AS warmed;"
        )
        .unwrap();
        let mut line = String::new();
        while !line.contains("warmed") {
            line.clear();
            assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "no answer");
        }
        writeln!(stdin, "SELECT 1 AS one;").unwrap();
        let sent = std::process::Command::new("kill")
            .args(["-INT", &shell.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        // A shell killed by the signal closes its input: the write fails.
        let _ = writeln!(stdin, "\\q");
        drop(stdin);
        let status = shell.wait().unwrap();
        assert!(status.success(), "the shell ended with {status}");
    }
}

/// The library's warnings reach `clip-sql`'s stderr (here a shard cut
/// short, skipped with `skip_unreadable`), and `RUST_LOG=off` silences
/// them.
#[test]
fn the_library_warnings_reach_stderr() {
    let samples: Vec<Sample> = (0..4u32)
        .map(|i| {
            (
                format!("s{i}"),
                vec![("cls", b"1".to_vec()), ("png", png_bytes(30, 20, i))],
            )
        })
        .collect();
    let mut shard = webdataset_shard(&samples);
    shard.truncate(shard.len() / 2);
    let dir = folder(&[("w/0.tar", shard)]);
    let sql = format!(
        "CREATE EXTERNAL TABLE w STORED AS WEBDATASET LOCATION '{}/w/' \
         OPTIONS ('skip_unreadable' 'true'); SELECT count(*) AS n FROM w;",
        dir.path().display()
    );
    let run = |rust_log: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_clip-sql"));
        command
            .args(["-q", "--format", "csv", "-c", &sql])
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("RUST_LOG");
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let warnings = run(None);
    assert!(
        warnings.contains("warning: WEBDATASET: skipping the rest of shard"),
        "{warnings}"
    );
    assert_eq!(run(Some("off")), "");
}
