//! Write a random-weight CLIP model to a directory, in the layout its
//! published weights use (ViTs as Hugging Face's `config.json` +
//! `model.safetensors`, ResNets as open_clip's), for trying the SQL
//! functions and measuring speed where pretrained weights cannot be
//! downloaded. `tiny` is a few-kilobyte model; any registry name (`RN50`,
//! `ViT-B/32`, ...) gives its published shape.
//!
//! ```sh
//! cargo run --release --example make_random_model -- /tmp/tiny-clip tiny
//! cargo run --release --example make_random_model -- /tmp/vit-b-32-random ViT-B/32
//! cargo run --release --example make_random_model -- /tmp/rn50-random RN50
//! cargo run --release --example make_random_model -- /tmp/tiny-b tiny 2   # another seed
//! clip-sql -c "SELECT clip_embed_text('/tmp/tiny-clip', 'a photo of a cat')"
//! ```

use clip_model::checkpoint::write_random_model;
use clip_model::registry::known_names;
use clip_model::{ClipConfig, find_known};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(dir), shape) = (
        args.next(),
        args.next().unwrap_or_else(|| "tiny".to_string()),
    ) else {
        eprintln!(
            "usage: make_random_model <dir> [tiny or a model name: {}] [seed]",
            known_names()
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
    let config = match (shape.as_str(), find_known(&shape)) {
        ("tiny", _) => ClipConfig::tiny(),
        (_, Some(known)) => known.config(),
        (other, None) => {
            eprintln!(
                "unknown shape '{other}': use tiny or one of {}",
                known_names()
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
