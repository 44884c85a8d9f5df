//! The efficiency table and the end-to-end split as text and CSV.

use std::fmt::Write as _;

use super::end_to_end::EndToEnd;
use super::model_speed::ModelSpeed;

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(
        || "-".to_string(),
        |b| format!("{:.0}", b as f64 / (1 << 20) as f64),
    )
}

/// The article's efficiency table: one row per model.
pub fn efficiency_table(rows: &[ModelSpeed]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:>7} {:>5} {:>11} {:>6} {:>10} {:>11} {:>12} {:>10}",
        "model",
        "device",
        "dtype",
        "latency ms",
        "batch",
        "images/s",
        "prompts/s",
        "device MiB",
        "host MiB"
    );
    for r in rows {
        let (batch, rate) = r.best().map_or_else(
            || ("-".to_string(), "-".to_string()),
            |(b, v)| (b.to_string(), format!("{v:.1}")),
        );
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>5} {:>11.2} {:>6} {:>10} {:>11.1} {:>12} {:>10}",
            r.model,
            r.device,
            r.dtype,
            r.latency_ms,
            batch,
            rate,
            r.prompts_per_s,
            mib(r.peak_device_bytes),
            mib(r.peak_host_bytes)
        );
    }
    out
}

/// With `CLIP_PROFILE=1`: each model's time per kind of operation, per
/// image-tower pass and as a share of the whole pass.
pub fn profile_table(rows: &[ModelSpeed]) -> String {
    let mut out = String::new();
    for r in rows.iter().filter(|r| !r.profile.is_empty()) {
        let (whole, passes) = r
            .profile
            .iter()
            .find(|(name, _, _)| *name == "image tower, whole pass")
            .map_or((0.0, 1), |(_, d, n)| (d.as_secs_f64(), (*n).max(1)));
        let _ = writeln!(
            out,
            "{} ({} passes, device synchronised around each section):",
            r.model, passes
        );
        let mut sections = r.profile.clone();
        sections.sort_by_key(|s| std::cmp::Reverse(s.1));
        for (name, total, calls) in sections {
            let per_pass_ms = total.as_secs_f64() * 1e3 / passes as f64;
            let share = if whole > 0.0 {
                100.0 * total.as_secs_f64() / whole
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "  {name:<48} {per_pass_ms:9.3} ms/pass {share:5.1}%  ({calls} calls)"
            );
        }
    }
    out
}

/// Every figure of every model, one CSV row per (model, batch size).
pub fn efficiency_csv(rows: &[ModelSpeed]) -> String {
    let mut out = String::from(
        "model,device,dtype,image_size,load_s,latency_ms,batch,images_per_s,note,prompts_per_s,peak_device_bytes,peak_host_bytes\n",
    );
    for r in rows {
        for b in &r.batches {
            let rate = b
                .outcome
                .images_per_s()
                .map_or(String::new(), |v| format!("{v:.2}"));
            let note = b.outcome.note();
            let _ = writeln!(
                out,
                "{},{},{},{},{:.2},{:.3},{},{},{},{:.2},{},{}",
                r.model,
                r.device,
                r.dtype,
                r.image_size,
                r.load_s,
                r.latency_ms,
                b.batch,
                rate,
                note,
                r.prompts_per_s,
                r.peak_device_bytes.map_or(String::new(), |v| v.to_string()),
                r.peak_host_bytes.map_or(String::new(), |v| v.to_string()),
            );
        }
    }
    out
}

/// The end-to-end figures and where the time went.
pub fn end_to_end_text(e: &EndToEnd, model_only_images_per_s: Option<f64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "end to end: SELECT count(clip_embed_image('{}', image)) over {} images",
        e.model, e.images
    );
    let _ = writeln!(
        out,
        "  images/s                      {:10.1}",
        e.images_per_s()
    );
    let _ = writeln!(out, "  wall                          {:10.3} s", e.wall_s);
    let _ = writeln!(
        out,
        "  scan alone (no model)         {:10.3} s",
        e.scan_only_s
    );
    let _ = writeln!(
        out,
        "  decode+preprocess, all calls  {:10.3} s (summed over partitions)",
        e.decode_cpu_s
    );
    let _ = writeln!(
        out,
        "  model busy                    {:10.3} s ({:.0}% of wall; {} passes, {:.0} rows/pass, {:.1} images/s while busy)",
        e.model_busy_s,
        100.0 * e.model_busy_s / e.wall_s,
        e.passes,
        e.rows_in_passes as f64 / e.passes.max(1) as f64,
        e.model_images_per_s()
    );
    let _ = writeln!(
        out,
        "  model idle (waiting for rows) {:10.3} s",
        e.model_idle_s()
    );
    let _ = writeln!(
        out,
        "  decode-bound images/s         {:10.1} (all cores), {:.1} (one core)",
        e.decode_bound_images_per_s, e.decode_one_core_images_per_s
    );
    if let Some(model_only) = model_only_images_per_s {
        let bound = model_only.min(e.decode_bound_images_per_s);
        let _ = writeln!(
            out,
            "  vs min(model-only {model_only:.1}, decode-bound {:.1}) = {bound:.1}: {:.2}x",
            e.decode_bound_images_per_s,
            e.images_per_s() / bound
        );
    }
    out
}

/// The end-to-end figures as a one-row CSV.
pub fn end_to_end_csv(e: &EndToEnd, model_only_images_per_s: Option<f64>) -> String {
    format!(
        "model,images,wall_s,images_per_s,scan_only_s,decode_cpu_s,model_busy_s,model_idle_s,passes,rows_in_passes,decode_bound_images_per_s,decode_one_core_images_per_s,model_only_images_per_s\n\
         {},{},{:.4},{:.2},{:.4},{:.4},{:.4},{:.4},{},{},{:.2},{:.2},{}\n",
        e.model,
        e.images,
        e.wall_s,
        e.images_per_s(),
        e.scan_only_s,
        e.decode_cpu_s,
        e.model_busy_s,
        e.model_idle_s(),
        e.passes,
        e.rows_in_passes,
        e.decode_bound_images_per_s,
        e.decode_one_core_images_per_s,
        model_only_images_per_s.map_or(String::new(), |v| format!("{v:.2}"))
    )
}
