//! The report on one page: `report.html` (self-contained: CSS and the
//! charts' SVG inline, no network, no script) and `report.md` (the same
//! tables for an issue or a paper draft, charts linked as PNG). Each table
//! carries the SQL that made it, one click away.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::{DataFusionError, Result};

use super::contents::{ReportInputs, ReportTable, model_label};

const TITLE: &str = "CLIP zero-shot evaluation";

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; margin-top: 2.5rem; }
nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #d0d0d0; padding: 0.25rem 0.55rem; }
th { background: #f2f2f2; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
tr.group td { background: #fafafa; font-weight: 600; }
figure { margin: 1rem 0 2rem; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9rem; }
details { margin: 0.3rem 0 1.2rem; }
summary { cursor: pointer; color: #0b5cad; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
p.note { color: #444; white-space: pre-line; }
";

/// Write `report.html` and `report.md` into the results directory.
pub fn write_pages(
    inputs: &ReportInputs,
    tables: &[ReportTable],
    charts: &[PathBuf],
) -> Result<Vec<PathBuf>> {
    let out = &inputs.results;
    let svgs: Vec<&PathBuf> = charts
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .collect();
    let html = html_page(inputs, tables, &svgs)?;
    let md = markdown_page(inputs, tables, &svgs)?;
    let mut written = Vec::new();
    for (name, text) in [("report.html", html), ("report.md", md)] {
        let path = out.join(name);
        std::fs::write(&path, text)
            .map_err(|e| DataFusionError::Execution(format!("{}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A report.sql comment without its `--` markers.
fn comment_text(comment: &str) -> String {
    comment
        .lines()
        .map(|l| l.trim_start_matches('-').trim())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The caption of a chart, from its file name.
fn chart_title(stem: &str) -> &'static str {
    match stem {
        "accuracy_by_model_and_dataset" => "Top-1 accuracy by dataset and model",
        "accuracy_by_task" => "Mean top-1 accuracy by task group",
        "parameters_vs_accuracy" => {
            "Mean top-1 against parameters: ResNets and ViTs, this run filled, published hollow"
        }
        "country211_by_region" => "Country211: top-1 accuracy by region",
        "ensemble_by_dataset" => "The weighted ensemble against its members, by dataset",
        _ => "Chart",
    }
}

/// A table's rows as text, NULL as an empty cell.
fn rows(batches: &[RecordBatch]) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut header = Vec::new();
    let mut rows = Vec::new();
    for batch in batches {
        if header.is_empty() {
            header = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
        }
        for r in 0..batch.num_rows() {
            let mut row = Vec::with_capacity(batch.num_columns());
            for column in batch.columns() {
                row.push(if column.is_null(r) {
                    String::new()
                } else {
                    array_value_to_string(column, r)?
                });
            }
            rows.push(row);
        }
    }
    Ok((header, rows))
}

fn is_number(cell: &str) -> bool {
    !cell.is_empty() && cell.parse::<f64>().is_ok()
}

fn read_svg(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", path.display())))?;
    // Inline SVG needs no XML declaration.
    let start = text.find("<svg").unwrap_or(0);
    Ok(text[start..].to_string())
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn settings_rows(inputs: &ReportInputs) -> Vec<(String, String)> {
    let mut settings = vec![(
        "models".to_string(),
        inputs
            .models
            .iter()
            .map(|m| {
                let label = model_label(m);
                let source = inputs.sources.get(m).unwrap_or(m);
                if label == *source {
                    label
                } else {
                    format!("{label} ({source})")
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    )];
    settings.extend(inputs.settings.iter().cloned());
    if let Some(weights) = &inputs.ensemble {
        settings.push(("ensemble".to_string(), weights.clone()));
    }
    if let Some(dir) = &inputs.efficiency {
        settings.push(("efficiency from".to_string(), dir.display().to_string()));
    }
    settings.push((
        "made by".to_string(),
        format!(
            "clip-sql {} (DataFusion {})",
            env!("CARGO_PKG_VERSION"),
            datafusion::DATAFUSION_VERSION
        ),
    ));
    settings
}

fn html_page(inputs: &ReportInputs, tables: &[ReportTable], svgs: &[&PathBuf]) -> Result<String> {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{TITLE}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{TITLE}</h1>\n\
         <p>The zero-shot evaluation of the article <em lang=\"zh\">CLIP模型性能测评:15个视觉数据集全面对比</em> \
         (\"CLIP model evaluation: a comparison over 15 vision datasets\"; its summary: \
         <code>sql/README.md</code>), made by <code>clip-sql</code> from this \
         directory's saved predictions. Figures are percent; published figures are OpenAI's \
         weights as CLIP_benchmark measured them.</p>\n<nav><a href=\"#run\">Run</a>\
         <a href=\"#charts\">Charts</a><a href=\"#tables\">Tables</a></nav>\n"
    );
    page.push_str("<h2 id=\"run\">Run</h2>\n<table class=\"settings\">\n");
    for (name, value) in settings_rows(inputs) {
        let _ = writeln!(
            page,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(&name),
            escape(&value)
        );
    }
    page.push_str("</table>\n<h2 id=\"charts\">Charts</h2>\n");
    for svg in svgs {
        let name = stem(svg);
        let _ = writeln!(
            page,
            "<figure id=\"chart-{name}\">\n{}\n<figcaption>{} (<a href=\"charts/{name}.png\">PNG</a>, \
             <a href=\"charts/{name}.svg\">SVG</a>)</figcaption>\n</figure>",
            read_svg(svg)?,
            escape(chart_title(&name))
        );
    }
    page.push_str("<h2 id=\"tables\">Tables</h2>\n");
    for table in tables {
        let (header, body) = rows(&table.batches)?;
        let _ = writeln!(
            page,
            "<section class=\"report-table\" id=\"table-{name}\">\n<h3>{name}</h3>\n\
             <p class=\"note\">{note}</p>",
            name = escape(&table.name),
            note = escape(&comment_text(&table.heading)),
        );
        for (group, header, body) in layout(&table.name, &header, &body) {
            if let Some(group) = group {
                let _ = writeln!(page, "<h4>{}</h4>", escape(&group));
            }
            page.push_str(&html_table(&header, &body));
        }
        let _ = writeln!(
            page,
            "<p class=\"note\">{} rows; <a href=\"tables/{}.csv\">CSV</a></p>\n\
             <details><summary>SQL</summary><pre><code>{}</code></pre></details>\n</section>",
            body.len(),
            escape(&table.name),
            escape(&table.sql)
        );
    }
    page.push_str("</body>\n</html>\n");
    Ok(page)
}

/// A table's parts as the page shows them: the accuracy matrix as one
/// table per task group, as the article lays out its general-object and
/// fine-grained tables (the `mean` row last, on its own); any other table
/// whole.
type Part = (Option<String>, Vec<String>, Vec<Vec<String>>);

fn layout(name: &str, header: &[String], body: &[Vec<String>]) -> Vec<Part> {
    if name != "accuracy_matrix" || header.first().map(String::as_str) != Some("task") {
        return vec![(None, header.to_vec(), body.to_vec())];
    }
    let mut parts: Vec<Part> = Vec::new();
    for row in body {
        let group = if row[0].is_empty() {
            "all datasets".to_string()
        } else {
            row[0].clone()
        };
        match parts.last_mut() {
            Some((Some(last), _, rows)) if *last == group => rows.push(row[1..].to_vec()),
            _ => parts.push((Some(group), header[1..].to_vec(), vec![row[1..].to_vec()])),
        }
    }
    parts
}

fn html_table(header: &[String], body: &[Vec<String>]) -> String {
    let mut out = format!(
        "<table>\n<tr>{}</tr>\n",
        header
            .iter()
            .map(|h| format!("<th>{}</th>", escape(h)))
            .collect::<String>()
    );
    for row in body {
        let cells: String = row
            .iter()
            .map(|c| {
                if is_number(c) {
                    format!("<td class=\"number\">{}</td>", escape(c))
                } else {
                    format!("<td>{}</td>", escape(c))
                }
            })
            .collect();
        let _ = writeln!(out, "<tr>{cells}</tr>");
    }
    out.push_str("</table>\n");
    out
}

fn markdown_table(header: &[String], body: &[Vec<String>]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        header
            .iter()
            .map(|h| markdown_cell(h))
            .collect::<Vec<_>>()
            .join(" | "),
        " --- |".repeat(header.len())
    );
    for row in body {
        let _ = writeln!(
            out,
            "| {} |",
            row.iter()
                .map(|c| markdown_cell(c))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    out
}

fn markdown_cell(cell: &str) -> String {
    cell.replace('|', "\\|").replace('\n', " ")
}

fn markdown_page(
    inputs: &ReportInputs,
    tables: &[ReportTable],
    svgs: &[&PathBuf],
) -> Result<String> {
    let mut page = format!(
        "# {TITLE}\n\nThe zero-shot evaluation of the article *CLIP模型性能测评:15个视觉数据集全面对比* \
         (\"CLIP model evaluation: a comparison over 15 vision datasets\"; summary in \
         `sql/README.md`), made by `clip-sql` from saved predictions. Figures are \
         percent; published figures are OpenAI's weights as CLIP_benchmark measured them.\n\n\
         ## Run\n\n| setting | value |\n| --- | --- |\n"
    );
    for (name, value) in settings_rows(inputs) {
        let _ = writeln!(
            page,
            "| {} | {} |",
            markdown_cell(&name),
            markdown_cell(&value)
        );
    }
    page.push_str("\n## Charts\n\n");
    for svg in svgs {
        let name = stem(svg);
        let _ = writeln!(page, "![{}](charts/{name}.png)\n", chart_title(&name));
    }
    page.push_str("## Tables\n");
    for table in tables {
        let (header, body) = rows(&table.batches)?;
        let _ = writeln!(
            page,
            "\n### {}\n\n{}\n",
            table.name,
            comment_text(&table.heading)
        );
        for (group, header, body) in layout(&table.name, &header, &body) {
            if let Some(group) = group {
                let _ = writeln!(page, "#### {group}\n");
            }
            page.push_str(&markdown_table(&header, &body));
            page.push('\n');
        }
        let _ = writeln!(
            page,
            "<details><summary>SQL</summary>\n\n```sql\n{}\n```\n</details>",
            table.sql
        );
    }
    Ok(page)
}
