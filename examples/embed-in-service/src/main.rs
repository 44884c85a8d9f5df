//! Embedding datafusion-clip in a service that owns its own
//! `SessionContext`: one call registers the functions, the IMAGEFOLDER
//! format and the `clip.*` settings; the rest is ordinary DataFusion.
//!
//! ```sh
//! cargo run --release -p embed-in-service -- <image folder> [model]
//! # offline, with a random-weight model:
//! cargo run --release --example make_random_model -- /tmp/tiny-clip tiny
//! cargo run --release -p embed-in-service -- photos/ /tmp/tiny-clip
//! ```

use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(folder) = args.next() else {
        eprintln!("usage: embed_in_service <image folder> [model]");
        std::process::exit(2);
    };
    let model = args.next().unwrap_or_else(|| "ViT-B/32".to_string());

    // The service's own context and settings...
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
    // ...gains the CLIP functions, tables and settings.
    datafusion_clip::register(&ctx)?;
    ctx.sql("SET clip.batch_size = 16").await?;

    ctx.sql(&format!(
        "CREATE EXTERNAL TABLE photos STORED AS IMAGEFOLDER LOCATION '{folder}'"
    ))
    .await?;
    // The folder names are the candidate labels.
    let df = ctx
        .sql(&format!(
            "SELECT path, label, clip_zero_shot('{model}', image,
                    (SELECT array_agg(DISTINCT label) FROM photos WHERE label IS NOT NULL))['label'] AS predicted
             FROM photos ORDER BY path"
        ))
        .await?;
    df.show().await?;
    Ok(())
}
