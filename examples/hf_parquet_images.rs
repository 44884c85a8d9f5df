//! Parquet files written by Hugging Face `datasets` store images as
//! `struct<bytes: binary, path: string>`. DataFusion reads them as they are,
//! and the CLIP functions take the struct as it is (`img`; its `path` then
//! names a broken row in errors) or its bytes (`img['bytes']`).
//!
//! ```sh
//! # a dataset's Parquet file, local or https://
//! cargo run --release --example hf_parquet_images -- \
//!   https://huggingface.co/datasets/uoft-cs/cifar10/resolve/main/plain_text/test-00000-of-00001.parquet ViT-B/32
//! ```

use datafusion::error::Result;
use datafusion::prelude::SessionContext;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(parquet) = args.next() else {
        eprintln!("usage: hf_parquet_images <parquet file or URL> [model]");
        std::process::exit(2);
    };
    let model = args.next().unwrap_or_else(|| "ViT-B/32".to_string());
    let ctx = SessionContext::new();
    datafusion_clip::register(&ctx)?;
    // For an https:// location, register the store the way clip-sql does.
    if parquet.starts_with("http") {
        let url = datafusion::datasource::listing::ListingTableUrl::parse(&parquet)?;
        datafusion_clip::ensure_object_store(ctx.runtime_env().as_ref(), &url)?;
    }
    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE images STORED AS PARQUET LOCATION '{parquet}'"
    ))
    .await?;
    ctx.sql("DESCRIBE images").await?.show().await?;
    ctx.sql(&format!(
        "SELECT img['path'] AS path, label,
                clip_zero_shot('{model}', img,
                  ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']) AS prediction
         FROM images LIMIT 10"
    ))
    .await?
    .show()
    .await?;
    Ok(())
}
