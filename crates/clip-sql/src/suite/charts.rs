//! The suite's charts: grouped horizontal bars (one group per dataset or
//! region, one bar per model), written as SVG and PNG. Horizontal, so that
//! long category names stay readable without rotated text.
//!
//! Text is laid out with DejaVu Sans compiled into the binary (through
//! plotters' ab_glyph backend): the PNG looks the same on a machine with
//! no fonts installed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Values to draw: `values[group][series]`, `None` where a model has no
/// figure for a group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedBars {
    pub title: String,
    pub value_label: String,
    pub groups: Vec<String>,
    pub series: Vec<String>,
    pub values: Vec<Vec<Option<f64>>>,
}

const WIDTH: u32 = 1100;
const BAR: u32 = 16;
const GROUP_GAP: u32 = 14;
const LEFT: u32 = 220;
const TOP: u32 = 90;
const BOTTOM: u32 = 70;
const FONT: &str = "sans-serif";

// Colour-blind-safe (Okabe & Ito), then plotters' palette for more models.
const COLOURS: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
];

fn colour(series: usize) -> RGBColor {
    COLOURS[series % COLOURS.len()]
}

/// Why a chart could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the chart font (DejaVu Sans) could not be loaded")]
    Font,

    /// plotters' drawing errors are generic over the backend; their text
    /// is what is kept.
    #[error("{}: {reason}", path.display())]
    Draw { path: PathBuf, reason: String },

    #[error("{}: {source}", path.display())]
    Save {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}

fn register_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok { Ok(()) } else { Err(ChartError::Font) }
}

/// A drawing failure while writing `path`.
fn draw_error(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> ChartError + '_ {
    move |e| ChartError::Draw {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl GroupedBars {
    fn height(&self) -> u32 {
        let group = self.series.len().max(1) as u32 * BAR + GROUP_GAP;
        TOP + BOTTOM + self.groups.len().max(1) as u32 * group
    }
}

/// Write `chart` to `<stem>.svg` and `<stem>.png`.
pub fn write_grouped_bars(chart: &GroupedBars, stem: &Path) -> Result<(), ChartError> {
    register_font()?;
    let size = (WIDTH, chart.height());
    let svg = stem.with_extension("svg");
    {
        let failed = draw_error(&svg);
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw(&root, chart).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    let png = stem.with_extension("png");
    let failed = draw_error(&png);
    let mut pixels = vec![0u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        draw(&root, chart).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    let image = image::RgbImage::from_raw(size.0, size.1, pixels)
        .ok_or_else(|| failed(&"pixel buffer of the wrong size"))?;
    image
        .save_with_format(&png, image::ImageFormat::Png)
        .map_err(|source| ChartError::Save {
            path: png.clone(),
            source,
        })
}

/// The axis ends at the next multiple of 10 past the largest figure
/// (room for its label), at most 100: low accuracies (Country211's) are not
/// squeezed against the axis.
fn x_axis_end(chart: &GroupedBars) -> f64 {
    let largest = chart
        .values
        .iter()
        .flatten()
        .flatten()
        .fold(0.0f64, |a, &b| a.max(b));
    ((largest * 1.08 / 10.0).ceil() * 10.0).clamp(10.0, 100.0)
}

/// Ticks every 10 points on a long axis, every 5 or 2 on a short one.
fn tick_step(x_max: f64) -> f64 {
    if x_max > 50.0 {
        10.0
    } else if x_max > 20.0 {
        5.0
    } else {
        2.0
    }
}

/// One row of legend entries (a colour square and the model name) under
/// the title, wrapping when it is wider than the chart.
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &GroupedBars,
    y: i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let (width, _) = root.dim_in_pixel();
    let (mut x, mut y) = (LEFT as i32, y);
    for (s, name) in chart.series.iter().enumerate() {
        let (text_width, _) = root.estimate_text_size(name, &style)?;
        let entry = 22 + text_width as i32 + 28;
        if x + entry > width as i32 - 20 && x > LEFT as i32 {
            x = LEFT as i32;
            y += 22;
        }
        root.draw(&Rectangle::new(
            [(x, y - 7), (x + 14, y + 7)],
            colour(s).filled(),
        ))?;
        root.draw_text(name, &style, (x + 20, y))?;
        x += entry;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &GroupedBars,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let groups = chart.groups.len().max(1) as f64;
    let per_group = chart.series.len().max(1) as f64;
    // One unit of y per group: bars fill its top part, the rest is a gap.
    let bar = BAR as f64 / (chart.series.len().max(1) as u32 * BAR + GROUP_GAP) as f64;
    let x_max = x_axis_end(chart);
    let (width, _) = root.dim_in_pixel();
    root.draw_text(
        &chart.title,
        &TextStyle::from((FONT, 24).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
        (width as i32 / 2, 12),
    )?;
    draw_legend(root, chart, 50)?;
    let mut plot = ChartBuilder::on(root)
        .margin(12)
        .margin_top(TOP as i32 - 12)
        .margin_right(40)
        .x_label_area_size(45)
        .y_label_area_size(LEFT)
        .build_cartesian_2d(0f64..x_max, groups..0f64)?;
    plot.configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels((x_max / tick_step(x_max)) as usize + 1)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(WHITE)
        .x_desc(&chart.value_label)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .draw()?;

    for s in 0..chart.series.len() {
        let bars = chart.values.iter().enumerate().filter_map(|(g, row)| {
            let value = (*row.get(s)?)?;
            let top = g as f64 + s as f64 * bar;
            Some(Rectangle::new(
                [(0.0, top), (value.clamp(0.0, x_max), top + bar * 0.9)],
                colour(s).filled(),
            ))
        });
        plot.draw_series(bars)?;
        // The figure at the end of each bar.
        let figures = chart.values.iter().enumerate().filter_map(|(g, row)| {
            let value = (*row.get(s)?)?;
            let middle = g as f64 + (s as f64 + 0.45) * bar;
            Some(Text::new(
                format!("{value:.1}"),
                (value.clamp(0.0, x_max) + x_max / 200.0, middle),
                TextStyle::from((FONT, 11).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
        });
        plot.draw_series(figures)?;
    }

    // Group names, right-aligned left of the plot, centred on their bars.
    let name_style =
        TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (g, name) in chart.groups.iter().enumerate() {
        let middle = g as f64 + per_group * bar / 2.0;
        let (x, y) = plot.backend_coord(&(0.0, middle));
        root.draw_text(name, &name_style, (x - 8, y))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_readable_svg_and_a_png_of_the_right_size() {
        let dir = tempfile::tempdir().unwrap();
        let chart = GroupedBars {
            title: "Zero-shot top-1 accuracy".into(),
            value_label: "top-1 accuracy (%)".into(),
            groups: vec!["CIFAR-10".into(), "Country211".into()],
            series: vec!["RN50".into(), "ViT-B/32".into()],
            values: vec![vec![Some(71.5), Some(89.8)], vec![None, Some(17.2)]],
        };
        let stem = dir.path().join("accuracy");
        write_grouped_bars(&chart, &stem).unwrap();
        let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
        for text in [
            "Zero-shot top-1 accuracy",
            "CIFAR-10",
            "Country211",
            "ViT-B/32",
            "89.8",
        ] {
            assert!(svg.contains(text), "no {text} in the SVG");
        }
        // RN50 has no Country211 figure: three bars, three figures.
        assert!(!svg.contains(">0.0<"));
        let png = image::open(stem.with_extension("png")).unwrap();
        assert_eq!((png.width(), png.height()), (WIDTH, chart.height()));
        // Text was drawn: some pixels are dark grey to black.
        let dark = png
            .to_rgb8()
            .pixels()
            .filter(|p| p.0.iter().all(|&c| c < 60))
            .count();
        assert!(dark > 1000, "only {dark} dark pixels");
    }
}
