//! Write a random-weight CLIP model (Hugging Face layout: `config.json` +
//! `model.safetensors`) to a directory, for trying the SQL functions and
//! measuring speed where pretrained weights cannot be downloaded.
//!
//! ```sh
//! cargo run --release --example make_random_model -- /tmp/tiny-clip tiny
//! cargo run --release --example make_random_model -- /tmp/vit-b-32-random ViT-B/32
//! cargo run --release --example make_random_model -- /tmp/tiny-b tiny 2   # another seed
//! clip-sql -c "SELECT clip_embed_text('/tmp/tiny-clip', 'a photo of a cat')"
//! ```

use datafusion_clip::model::ClipConfig;
use datafusion_clip::model::random_weights::write_random_model;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), shape) = (
        args.next(),
        args.next().unwrap_or_else(|| "tiny".to_string()),
    ) else {
        eprintln!(
            "usage: make_random_model <dir> [tiny|ViT-B/32|ViT-B/16|ViT-L/14|ViT-L/14@336px] [seed]"
        );
        std::process::exit(2);
    };
    let seed = match args.next().map(|s| s.parse::<u64>()) {
        None => 0,
        Some(Ok(seed)) => seed,
        Some(Err(_)) => {
            eprintln!("the seed must be a whole number");
            std::process::exit(2);
        }
    };
    let config = match shape.as_str() {
        "tiny" => ClipConfig::tiny(),
        "ViT-B/32" => ClipConfig::vit_b_32(),
        "ViT-B/16" => ClipConfig::vit_b_16(),
        "ViT-L/14" => ClipConfig::vit_l_14(),
        "ViT-L/14@336px" => ClipConfig::vit_l_14_336(),
        other => {
            eprintln!(
                "unknown shape '{other}': use tiny, ViT-B/32, ViT-B/16, ViT-L/14 or ViT-L/14@336px"
            );
            std::process::exit(2);
        }
    };
    if let Err(e) = write_random_model(std::path::Path::new(&dir), &config, seed) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    println!("wrote a random {shape} CLIP model to {dir}");
}
