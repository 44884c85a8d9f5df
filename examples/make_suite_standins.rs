//! Write stand-in WebDataset shards for every benchmark dataset, in the
//! layout of CLIP_benchmark's mirrors (`<dataset>/0.tar`, `1.tar`, ...,
//! members `<key>.cls` and `<key>.webp`), to run `clip-sql suite` end to
//! end without the real data:
//!
//! ```sh
//! cargo run --release --example make_suite_standins -- /tmp/standins 200
//! cargo run --release --example make_random_model -- /tmp/tiny-a tiny 1
//! cargo run --release --example make_random_model -- /tmp/tiny-b tiny 2
//! clip-sql suite --models /tmp/tiny-a,/tmp/tiny-b --out /tmp/results \
//!     --ensemble /tmp/tiny-a=0.6,/tmp/tiny-b=0.4 \
//!     $(for d in /tmp/standins/*/; do echo --data $(basename $d)=$d; done)
//! ```
//!
//! Each dataset gets `images` samples (default 200) in shards of 100,
//! labels cycling through its classes (sql/data/classnames/<dataset>.csv),
//! each image a 64x48 JPEG-sized picture made from its key; a retrieval
//! dataset's samples carry five captions instead, in CLIP_benchmark's
//! retrieval layout (`dataset_type.txt`), and the suite runs them because
//! `--data` names them. A random model
//! scores them near chance: the point is the pipeline, not the accuracy.

use std::io::Cursor;
use std::path::Path;

use image::{ImageBuffer, ImageFormat, Rgb};

// The repository root: this example belongs to crates/clip-sql.
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const SHARD_SIZE: usize = 100;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: make_suite_standins <dir> [images per dataset]");
        std::process::exit(2);
    };
    let images = match args.next().map(|n| n.parse::<usize>()) {
        None => 200,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("images per dataset must be a positive number");
            std::process::exit(2);
        }
    };
    if let Err(e) = write_all(Path::new(&dir), images) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// (dataset, classes) of every dataset of the catalogue; `None` classes
/// for a retrieval dataset (its task, the last field, is `retrieval`).
fn datasets() -> std::io::Result<Vec<(String, Option<usize>)>> {
    let catalogue = std::fs::read_to_string(format!("{ROOT}/sql/benchmarks/datasets.csv"))?;
    let mut out = Vec::new();
    for line in catalogue.lines().skip(1) {
        let slug = line.split(',').next().unwrap_or_default().to_string();
        if line.rsplit(',').next() == Some("retrieval") {
            out.push((slug, None));
            continue;
        }
        let classes = std::fs::read_to_string(format!("{ROOT}/sql/data/classnames/{slug}.csv"))?
            .lines()
            .count()
            .saturating_sub(1);
        out.push((slug, Some(classes.max(1))));
    }
    Ok(out)
}

/// Five captions for sample `n`, one per line, from a small vocabulary.
fn captions(n: usize) -> String {
    const WORDS: [&str; 12] = [
        "a", "dog", "cat", "red", "car", "street", "two", "people", "on", "the", "beach", "running",
    ];
    (0..5)
        .map(|c| {
            (0..6)
                .map(|w| WORDS[(n * 31 + c * 17 + w * 7) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn picture(seed: usize) -> std::io::Result<Vec<u8>> {
    let image = ImageBuffer::from_fn(64, 48, |x, y| {
        let s = seed as u32;
        Rgb([
            ((x * 4 + s * 37) % 256) as u8,
            ((y * 5 + s * 11) % 256) as u8,
            ((x + y + s * 97) % 256) as u8,
        ])
    });
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::WebP)
        .map_err(std::io::Error::other)?;
    Ok(bytes)
}

fn write_all(dir: &Path, images: usize) -> std::io::Result<()> {
    for (slug, classes) in datasets()? {
        let target = dir.join(&slug);
        std::fs::create_dir_all(&target)?;
        if classes.is_none() {
            // CLIP_benchmark's retrieval layout: the WEBDATASET table then
            // has a `captions` column.
            std::fs::write(target.join("dataset_type.txt"), "retrieval\n")?;
        }
        for (shard, start) in (0..images).step_by(SHARD_SIZE).enumerate() {
            let mut builder = tar::Builder::new(Vec::new());
            for n in start..(start + SHARD_SIZE).min(images) {
                let key = format!("s{n:06}");
                let members = match classes {
                    // Spread labels over every class, whatever the count.
                    Some(classes) => [
                        ("cls", ((n * 7919) % classes).to_string().into_bytes()),
                        ("webp", picture(n)?),
                    ],
                    None => [("txt", captions(n).into_bytes()), ("webp", picture(n)?)],
                };
                for (ext, data) in members {
                    let mut header = tar::Header::new_gnu();
                    header.set_size(data.len() as u64);
                    header.set_mode(0o644);
                    header.set_cksum();
                    builder.append_data(&mut header, format!("{key}.{ext}"), data.as_slice())?;
                }
            }
            std::fs::write(target.join(format!("{shard}.tar")), builder.into_inner()?)?;
        }
        match classes {
            Some(classes) => println!("{slug}: {images} images, {classes} classes"),
            None => println!("{slug}: {images} images, 5 captions each"),
        }
    }
    Ok(())
}
