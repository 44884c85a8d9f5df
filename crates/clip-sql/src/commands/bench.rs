//! `clip-sql bench`: the efficiency table and the end-to-end split.

use std::path::PathBuf;

use clip_model::{HubOptions, ModelRef, fetch_config, fetch_files};
use clip_sql::bench::{self, BenchError, SpeedSettings, random_models, report};
use datafusion::config::ExtensionOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_clip::ClipOptions;
use datafusion_clip::{device_name, select_device, select_dtype};

use super::suite::parse_pair;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Models to measure: names, hub repositories or local directories.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "RN50,RN101,ViT-B/32,ViT-B/16,ViT-L/14,ViT-L/14@336px"
    )]
    models: Vec<String>,

    /// Use random weights at each model's published shape, written once
    /// under DIR, instead of downloading the checkpoints (speed does not
    /// depend on the weights' values).
    #[arg(long, value_name = "DIR")]
    random_weights: Option<PathBuf>,

    /// cpu, cuda:N or auto (a GPU when this build and machine have one).
    #[arg(long, default_value = "auto")]
    device: String,

    /// f32, f16, bf16 or auto (f16 on a GPU, f32 on the CPU).
    #[arg(long, default_value = "auto")]
    dtype: String,

    /// Image batch sizes to time [default: 1,64,128,256,512 on a GPU; 1,8,32 on the CPU].
    #[arg(long, value_delimiter = ',')]
    batch_sizes: Vec<usize>,

    /// Prompts per text pass [default: 256 on a GPU, 64 on the CPU].
    #[arg(long)]
    text_batch: Option<usize>,

    /// Least seconds of timed work per figure.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,

    /// A folder of images (e.g. 500x375 JPEGs) for the end-to-end query;
    /// without it only the model-only table is measured.
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,

    /// The model of the end-to-end query [default: the first of --models].
    #[arg(long)]
    end_to_end_model: Option<String>,

    /// Write efficiency.csv (and end_to_end.csv) into this folder.
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,

    /// Replace the efficiency.csv and end_to_end.csv an earlier run left
    /// in --output (without it, such files stop the run before it measures).
    #[arg(long)]
    overwrite: bool,

    /// A setting for the end-to-end session, e.g. --set clip.batch_size=256
    /// (repeatable; clip.device and clip.dtype follow --device and --dtype).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair)]
    settings: Vec<(String, String)>,
}

fn config_error(e: impl ToString) -> DataFusionError {
    DataFusionError::Configuration(e.to_string())
}

pub async fn run_bench(
    args: BenchArgs,
    mut options: datafusion::config::ConfigOptions,
) -> Result<()> {
    let mut clip = ClipOptions::default();
    clip.set("device", &args.device)?;
    clip.set("dtype", &args.dtype)?;
    let device = select_device(clip.device).map_err(config_error)?;
    let dtype = select_dtype(clip.dtype, &device);
    let on_gpu = !device.is_cpu();
    let settings = SpeedSettings {
        batch_sizes: if args.batch_sizes.is_empty() {
            if on_gpu {
                vec![1, 64, 128, 256, 512]
            } else {
                vec![1, 8, 32]
            }
        } else {
            args.batch_sizes.clone()
        },
        text_batch: args.text_batch.unwrap_or(if on_gpu { 256 } else { 64 }),
        seconds: args.seconds,
    };
    if settings.batch_sizes.contains(&0) {
        return Err(config_error("--batch-sizes must be positive"));
    }
    // Checked before the models are measured, which can take an hour: a
    // mistyped folder must not cost it.
    if let Some(images) = &args.images {
        bench::end_to_end::image_files(images).map_err(config_error)?;
    }
    if let Some(dir) = &args.output {
        // Refused before measuring: an earlier run's figures (a GPU's,
        // perhaps, on a machine lent for an hour) are not lost to a rerun.
        for earlier in ["efficiency.csv", "end_to_end.csv"].map(|f| dir.join(f)) {
            if !earlier.exists() {
                continue;
            }
            if !args.overwrite {
                return Err(config_error(format!(
                    "{} is there from an earlier run; pass --overwrite to replace it, or \
                     another --output",
                    earlier.display()
                )));
            }
            // Both go: a run without --images must not leave the earlier
            // run's end-to-end figures beside its own table.
            std::fs::remove_file(&earlier)
                .map_err(|e| config_error(format!("cannot replace {}: {e}", earlier.display())))?;
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| config_error(format!("cannot create {}: {e}", dir.display())))?;
    }

    // The model argument each measurement uses: a random-weight directory
    // or what the user named.
    let hub = HubOptions::from_env(clip.is_offline());
    let mut arguments = Vec::new();
    for name in &args.models {
        let argument = match &args.random_weights {
            Some(cache) => {
                eprintln!("{name}: random weights at the published shape");
                random_models::random_model_dir(cache, name)
                    .map_err(config_error)?
                    .display()
                    .to_string()
            }
            None => name.clone(),
        };
        arguments.push((name.clone(), argument));
    }

    // A model that fails to measure is reported and the others still run.
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (name, argument) in &arguments {
        eprintln!("{name}: measuring on {} in {dtype:?}", device_name(&device));
        let measured = ModelRef::parse(argument)
            .and_then(|model| fetch_files(&model, &hub))
            .map_err(BenchError::from)
            .and_then(|files| {
                tokio::task::block_in_place(|| {
                    bench::measure_model(name, &files, &device, dtype, &settings)
                })
            });
        match measured {
            Ok(row) => {
                eprint!("{}", report::efficiency_table(std::slice::from_ref(&row)));
                rows.push(row);
            }
            Err(e) => {
                eprintln!("{name}: not measured: {e}");
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    println!("\n{}", report::efficiency_table(&rows));
    print!("{}", report::profile_table(&rows));
    if let Some(dir) = &args.output {
        write(dir.join("efficiency.csv"), report::efficiency_csv(&rows))?;
    }

    if let Some(images) = &args.images {
        let name = args
            .end_to_end_model
            .clone()
            .or_else(|| args.models.first().cloned())
            .ok_or_else(|| config_error("--end-to-end-model or --models is needed"))?;
        let argument = arguments
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| name.clone());
        let model = ModelRef::parse(&argument).map_err(|e| config_error(e.to_string()))?;
        let image_size = fetch_config(&model, &hub)
            .map_err(|e| config_error(e.to_string()))?
            .vision_config
            .image_size;
        // The device the table was measured on, by name: a GPU that fails
        // now is an error, not a silent fall back to the CPU.
        options.set("clip.device", &device_name(&device))?;
        options.set("clip.dtype", &args.dtype)?;
        for (key, value) in &args.settings {
            options.set(key, value)?;
        }
        let ctx = SessionContext::new_with_config(SessionConfig::from(options));
        datafusion_clip::register(&ctx)?;
        let batch_size =
            ClipOptions::from_config(ctx.state().config().options()).batch_size_on(&device);
        eprintln!(
            "end to end: {name} over {} (clip.batch_size = {batch_size})",
            images.display()
        );
        let mut e2e = bench::measure_end_to_end(&ctx, images, &argument, image_size)
            .await
            .map_err(config_error)?;
        // Reported by the name asked for, not the random-weight directory.
        e2e.model = name.clone();
        // The model-only rate at the batch size the query used.
        let model_only = rows.iter().find(|r| r.model == name).and_then(|r| {
            r.batches
                .iter()
                .find(|b| b.batch == batch_size)
                .and_then(|b| b.outcome.images_per_s())
                .or_else(|| r.best().map(|(_, v)| v))
        });
        println!("{}", report::end_to_end_text(&e2e, model_only));
        if let Some(dir) = &args.output {
            write(
                dir.join("end_to_end.csv"),
                report::end_to_end_csv(&e2e, model_only),
            )?;
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(DataFusionError::Execution(format!(
            "{} model(s) could not be measured:\n{}",
            failures.len(),
            failures.join("\n")
        )))
    }
}

fn write(path: PathBuf, text: String) -> Result<()> {
    std::fs::write(&path, text)
        .map_err(|e| config_error(format!("cannot write {}: {e}", path.display())))
}
