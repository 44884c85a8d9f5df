//! The Hugging Face download path against a local stand-in of the hub:
//! `hf:org/repo` models are fetched with hf-hub into `$HF_HOME`, then work
//! offline from the cache; a model missing offline is a clear error.

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Serves `/{repo}/resolve/main/{file}` the way the hub answers hf-hub
/// (`etag`, `x-repo-commit` and ranged `206` responses), and the file list
/// at `/api/models/{repo}/revision/main`.
struct HubStandIn {
    address: String,
    requests: Arc<AtomicUsize>,
}

impl HubStandIn {
    fn start(repo: &str, files: HashMap<String, Vec<u8>>) -> HubStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let prefix = format!("/{repo}/resolve/main/");
        let info_path = format!("/api/models/{repo}/revision/main");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                serve(stream, &prefix, &info_path, &files);
            }
        });
        HubStandIn { address, requests }
    }
}

fn serve(mut stream: TcpStream, prefix: &str, info_path: &str, files: &HashMap<String, Vec<u8>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    // `Range: bytes=a-b` (hf-hub's metadata probe is `0-0`) or `bytes=a-`.
    let mut range: Option<(usize, Option<usize>)> = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = r.trim().split_once('-').unwrap_or((r.trim(), ""));
            range = a.parse().ok().map(|a| (a, b.parse().ok()));
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    if path == info_path {
        let siblings: Vec<String> = files
            .keys()
            .map(|f| format!("{{\"rfilename\": \"{f}\"}}"))
            .collect();
        let body = format!(
            "{{\"sha\": \"0123456789abcdef0123456789abcdef01234567\", \"siblings\": [{}]}}",
            siblings.join(", ")
        );
        let header = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(header.as_bytes());
        let _ = stream.write_all(body.as_bytes());
        return;
    }
    let Some(body) = path.strip_prefix(prefix).and_then(|name| files.get(name)) else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        return;
    };
    let (start, last) = match range {
        Some((a, Some(b))) => (a, b.min(body.len() - 1)),
        Some((a, None)) => (a, body.len() - 1),
        None => (0, body.len() - 1),
    };
    let chunk = &body[start..=last];
    let header = format!(
        "HTTP/1.1 206 Partial Content\r\netag: \"{:x}\"\r\nx-repo-commit: 0123456789abcdef0123456789abcdef01234567\r\n\
         content-range: bytes {start}-{last}/{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        fingerprint(body),
        body.len(),
        chunk.len()
    );
    let _ = stream.write_all(header.as_bytes());
    let _ = stream.write_all(chunk);
}

fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn model_files(dir: &Path, names: &[&str]) -> HashMap<String, Vec<u8>> {
    names
        .iter()
        .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
        .collect()
}

fn clip_sql(env: &[(&str, &str)], sql: &str) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clip-sql"));
    cmd.current_dir(crate::common::repo());
    cmd.args(["-q", "--format", "csv", "-c", sql])
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_ENDPOINT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn hub_models_download_into_hf_home_then_work_offline() {
    let hub = HubStandIn::start(
        "test-org/tiny-clip",
        model_files(
            common::tiny_model_dir(),
            &["config.json", "model.safetensors"],
        ),
    );
    let home = tempfile::tempdir().unwrap();
    let home_str = home.path().to_str().unwrap();
    let sql = "SELECT cosine_similarity(clip_embed_text('hf:test-org/tiny-clip', 'a cat'), \
               clip_embed_text('hf:test-org/tiny-clip', 'a cat')) AS same";

    let online = clip_sql(&[("HF_HOME", home_str), ("HF_ENDPOINT", &hub.address)], sql);
    assert!(
        online.status.success(),
        "{}",
        String::from_utf8_lossy(&online.stderr)
    );
    let out = String::from_utf8_lossy(&online.stdout);
    let value: f32 = out.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!((value - 1.0).abs() < 1e-5, "{out}");
    assert!(hub.requests.load(Ordering::SeqCst) >= 2);
    let cached = home
        .path()
        .join("hub/models--test-org--tiny-clip/snapshots");
    assert!(
        cached.is_dir(),
        "files land in the standard HF cache layout"
    );

    // Offline, with the hub gone: served from the cache.
    let offline = clip_sql(
        &[
            ("HF_HOME", home_str),
            ("HF_ENDPOINT", "http://127.0.0.1:9"),
            ("HF_HUB_OFFLINE", "1"),
        ],
        sql,
    );
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );

    // Offline and not cached: the error names the model, the repo and the cache.
    let missing = clip_sql(
        &[("HF_HOME", home_str), ("HF_HUB_OFFLINE", "1")],
        "SELECT clip_embed_text('hf:test-org/other-model', 'a cat')",
    );
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("test-org/other-model"), "{err}");
    assert!(err.contains(&format!("{home_str}/hub")), "{err}");
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
}

/// A repository laid out like `timm/vit_base_patch32_clip_224.openai`:
/// open_clip's files next to timm's own `config.json` + `model.safetensors`
/// (an image tower alone). The open_clip checkpoint must be the one used.
#[test]
fn timm_style_repositories_load_their_open_clip_checkpoint() {
    let open_clip = Path::new(crate::common::repo()).join("tests/fixtures/models/open_clip_tiny");
    let mut files = model_files(
        &open_clip,
        &["open_clip_config.json", "open_clip_model.safetensors"],
    );
    files.insert(
        "config.json".to_string(),
        br#"{"architecture": "vit_base_patch32_clip_224", "num_classes": 512}"#.to_vec(),
    );
    files.insert(
        "model.safetensors".to_string(),
        b"not these weights".to_vec(),
    );
    let hub = HubStandIn::start("timm/tiny_clip.openai", files);
    let home = tempfile::tempdir().unwrap();
    let out = clip_sql(
        &[
            ("HF_HOME", home.path().to_str().unwrap()),
            ("HF_ENDPOINT", &hub.address),
        ],
        "SELECT arrow_typeof(clip_embed_text('hf:timm/tiny_clip.openai', 'a cat')) AS t",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The open_clip fixture's embedding width is 16.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("16"), "{text}");
    let snapshot = home
        .path()
        .join("hub/models--timm--tiny_clip.openai/snapshots");
    let fetched: Vec<String> = std::fs::read_dir(snapshot)
        .unwrap()
        .flat_map(|commit| std::fs::read_dir(commit.unwrap().path()).unwrap())
        .map(|f| f.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        fetched.contains(&"open_clip_model.safetensors".to_string()),
        "{fetched:?}"
    );
    assert!(
        !fetched.contains(&"model.safetensors".to_string()),
        "{fetched:?}"
    );
}
