//! Any bytes as the files of the three image tables, read through
//! DataFusion as a query would: a CIFAR-10 or CIFAR-100 batch file, a
//! WebDataset shard, or an IMAGEFOLDER tree whose file names and contents
//! come from the input (names with any characters, `..`, `%`, empty parts).
//! Creating the table and reading every column (the image bytes through
//! `clip_image_error`) gives rows or an error, never a panic or a hang.
#![no_main]

use std::sync::{Arc, LazyLock};

use datafusion::prelude::SessionContext;
use libfuzzer_sys::fuzz_target;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
});

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    RUNTIME.block_on(read_table(which % 5, bytes));
});

async fn read_table(which: u8, bytes: &[u8]) {
    let store = Arc::new(InMemory::new());
    let (format, location, options) = match which {
        0 => {
            put(&store, "cifar/test_batch.bin", bytes).await;
            ("CIFAR", "memory:///cifar/", "")
        }
        1 => {
            put(&store, "cifar/test.bin", bytes).await;
            ("CIFAR", "memory:///cifar/", "OPTIONS ('variant' '100')")
        }
        2 => {
            put(&store, "shards/0.tar", bytes).await;
            ("WEBDATASET", "memory:///shards/", "")
        }
        _ => {
            for (name, content) in folder_files(bytes) {
                let path = Path::from(format!("photos/{name}"));
                let _ = store.put(&path, PutPayload::from(content.to_vec())).await;
            }
            let options = if which == 3 {
                ""
            } else {
                "OPTIONS ('skip_unreadable' 'true')"
            };
            ("IMAGEFOLDER", "memory:///photos/", options)
        }
    };
    let ctx = SessionContext::new_with_config(
        datafusion_clip::session_config().with_target_partitions(2),
    );
    datafusion_clip::register(&ctx).expect("registering the CLIP functions");
    let memory = url::Url::parse("memory://").expect("a URL");
    ctx.register_object_store(&memory, store as Arc<dyn ObjectStore>);
    let create = format!("CREATE EXTERNAL TABLE t STORED AS {format} LOCATION '{location}' {options}");
    // Refusing the files (not a CIFAR batch, no images) is an answer too.
    let created = match ctx.sql(&create).await {
        Ok(df) => df.collect().await.is_ok(),
        Err(_) => false,
    };
    if created && let Ok(df) = ctx.sql("SELECT *, clip_image_error(image) FROM t").await {
        let _ = df.collect().await;
    }
}

async fn put(store: &InMemory, path: &str, bytes: &[u8]) {
    store
        .put(&Path::from(path), PutPayload::from(bytes.to_vec()))
        .await
        .expect("an in-memory put");
}

/// Files of a folder: `name \n content` entries separated by NUL bytes.
fn folder_files(bytes: &[u8]) -> Vec<(String, &[u8])> {
    bytes
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let newline = entry.iter().position(|&b| b == b'\n')?;
            let name = String::from_utf8_lossy(&entry[..newline]).into_owned();
            Some((name, &entry[newline + 1..]))
        })
        .take(64)
        .collect()
}
