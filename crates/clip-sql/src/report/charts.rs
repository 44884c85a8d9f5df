//! The report's charts, written as SVG and PNG: grouped horizontal bars
//! (one group per dataset, task group or region, one bar per model;
//! horizontal, so that long category names stay readable without rotated
//! text) and a scatter of mean accuracy against parameters.
//!
//! plotters draws the SVG; the PNG is that SVG rasterised by resvg, so the
//! two are one drawing. Text is measured and drawn with DejaVu Sans compiled
//! into the binary (plotters' ab_glyph backend measures, resvg shapes): the
//! PNG looks the same on a machine with no fonts installed. plotters' own
//! bitmap backend was not used for the PNG: it places each glyph without
//! its side bearing and rounds each glyph's height on its own, which left
//! labels ragged ("ViTB/32 60·0").

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use resvg::usvg;

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
/// The narrowest room left of the bars for group names; wider when a name
/// needs it.
const LEFT: u32 = 220;
const TOP: u32 = 90;
const BOTTOM: u32 = 70;
const FONT: &str = "sans-serif";
/// The one font charts use, compiled in (the `dejavu` crate).
const FONT_NAME: &str = "DejaVu Sans";

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

/// A chart that can be drawn on any plotters backend.
trait Chart {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>;
}

impl Chart for GroupedBars {
    fn size(&self) -> (u32, u32) {
        (WIDTH, self.height())
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        draw(root, self)
    }
}

/// Write `chart` to `<stem>.svg` and `<stem>.png`.
pub fn write_grouped_bars(chart: &GroupedBars, stem: &Path) -> Result<(), ChartError> {
    write_chart(chart, stem)
}

/// Write `chart` to `<stem>.svg` and `<stem>.png`.
pub fn write_scatter(chart: &Scatter, stem: &Path) -> Result<(), ChartError> {
    write_chart(chart, stem)
}

fn write_chart(chart: &impl Chart, stem: &Path) -> Result<(), ChartError> {
    register_font()?;
    let size = chart.size();
    let svg = stem.with_extension("svg");
    {
        let failed = draw_error(&svg);
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        chart.draw(&root).map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    let png = stem.with_extension("png");
    let image = rasterise(&svg, size).map_err(|e| draw_error(&png)(&e))?;
    image
        .save_with_format(&png, image::ImageFormat::Png)
        .map_err(|source| ChartError::Save {
            path: png.clone(),
            source,
        })
}

/// The SVG file at `svg` as pixels, every font family drawn as DejaVu Sans
/// (the font plotters measured the text with).
fn rasterise(svg: &Path, (width, height): (u32, u32)) -> Result<image::RgbImage, String> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    let fonts = FONTS.get_or_init(|| {
        let mut fonts = usvg::fontdb::Database::new();
        fonts.load_font_data(dejavu::sans::regular().to_vec());
        fonts.set_sans_serif_family(FONT_NAME);
        Arc::new(fonts)
    });
    let options = usvg::Options {
        fontdb: Arc::clone(fonts),
        font_family: FONT_NAME.to_string(),
        ..usvg::Options::default()
    };
    let text = std::fs::read(svg).map_err(|e| format!("{}: {e}", svg.display()))?;
    let tree = usvg::Tree::from_data(&text, &options).map_err(|e| e.to_string())?;
    let mut pixmap = resvg::tiny_skia::Pixmap::new(width, height)
        .ok_or_else(|| format!("a {width}x{height} image is too large"))?;
    resvg::render(&tree, Default::default(), &mut pixmap.as_mut());
    // Charts fill their background white: every pixel is opaque, so the
    // premultiplied RGBA is the plain colour and alpha can be dropped.
    let rgb = pixmap
        .data()
        .chunks_exact(4)
        .flat_map(|rgba| [rgba[0], rgba[1], rgba[2]])
        .collect();
    image::RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| "pixel buffer of the wrong size".to_string())
}

/// One model on the scatter.
#[derive(Debug, Clone, PartialEq)]
pub struct ScatterPoint {
    pub label: String,
    /// `ResNet` or `ViT`: one colour each.
    pub series: String,
    /// Measured in this run (filled) or published (hollow).
    pub measured: bool,
    pub x: f64,
    pub y: f64,
}

/// Points with a logarithmic x axis (parameters span three orders of
/// magnitude once tiny test models join the published ones).
#[derive(Debug, Clone, PartialEq)]
pub struct Scatter {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<ScatterPoint>,
}

const SCATTER_HEIGHT: u32 = 700;
const FAMILIES: [&str; 2] = ["ResNet", "ViT"];

fn family_colour(series: &str) -> RGBColor {
    colour(FAMILIES.iter().position(|f| *f == series).unwrap_or(2))
}

impl Chart for Scatter {
    fn size(&self) -> (u32, u32) {
        (WIDTH, SCATTER_HEIGHT)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let (width, _) = root.dim_in_pixel();
        root.draw_text(
            &self.title,
            &TextStyle::from((FONT, 24).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
            (width as i32 / 2, 12),
        )?;
        // Legend: each family, filled for this run, hollow for published.
        let style = TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        let mut x = 120;
        for family in FAMILIES {
            for measured in [true, false] {
                let colour = family_colour(family);
                let marker = if measured {
                    colour.filled()
                } else {
                    colour.stroke_width(2)
                };
                root.draw(&Circle::new((x, 56), 6, marker))?;
                let text = format!(
                    "{family} ({})",
                    if measured { "this run" } else { "published" }
                );
                root.draw_text(&text, &style, (x + 12, 56))?;
                x += 30 + root.estimate_text_size(&text, &style)?.0 as i32;
            }
        }
        let (x_min, x_max) = self
            .points
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), p| {
                (lo.min(p.x), hi.max(p.x))
            });
        let (x_min, x_max) = if x_min > x_max {
            (1.0, 1000.0)
        } else {
            ((x_min / 2.0).max(1e-6), x_max * 2.0)
        };
        let y_top = self.points.iter().fold(0.0f64, |a, p| a.max(p.y));
        let y_top = ((y_top * 1.1 / 10.0).ceil() * 10.0).clamp(10.0, 100.0);
        let mut plot = ChartBuilder::on(root)
            .margin(20)
            .margin_top(80)
            .margin_right(60)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d((x_min..x_max).log_scale(), 0f64..y_top)?;
        plot.configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|x| {
                if *x >= 1.0 {
                    format!("{x:.0}")
                } else {
                    format!("{x:.2}")
                }
            })
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()?;
        let label_style =
            TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        let labels: Vec<String> = self
            .points
            .iter()
            .map(|p| format!("{} {:.1}", p.label, p.y))
            .collect();
        let markers: Vec<(i32, i32)> = self
            .points
            .iter()
            .map(|p| plot.backend_coord(&(p.x, p.y)))
            .collect();
        let mut widths = Vec::with_capacity(labels.len());
        for text in &labels {
            widths.push(root.estimate_text_size(text, &label_style)?.0 as i32);
        }
        for point in &self.points {
            let colour = family_colour(&point.series);
            let marker = if point.measured {
                colour.filled()
            } else {
                colour.stroke_width(2)
            };
            plot.draw_series([Circle::new((point.x, point.y), 6, marker)])?;
        }
        let area = plot.plotting_area().get_pixel_range();
        for (text, anchor) in labels.iter().zip(place_labels(&markers, &widths, area)) {
            root.draw_text(text, &label_style, anchor)?;
        }
        Ok(())
    }
}

/// Half a scatter label's height, and a marker's radius with its stroke
/// (pixels).
const LABEL_HALF_HEIGHT: i32 = 8;
const MARKER_RADIUS: i32 = 7;

/// Where each marker's label goes (its left end and vertical middle, in
/// pixels): right of the marker, else left of, above or below it, whichever
/// first covers no other marker and no label placed before and stays inside
/// `area`; when none does (a crowd of models of nearly equal size), right
/// of it, moved down a line at a time until it covers no other label.
fn place_labels(
    markers: &[(i32, i32)],
    widths: &[i32],
    area: (Range<i32>, Range<i32>),
) -> Vec<(i32, i32)> {
    // (left, top, right, bottom)
    type Rect = (i32, i32, i32, i32);
    let overlaps = |a: Rect, b: Rect| a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3;
    let label = |(x, y): (i32, i32), width: i32| {
        (x, y - LABEL_HALF_HEIGHT, x + width, y + LABEL_HALF_HEIGHT)
    };
    let inside = |r: Rect| {
        r.0 >= area.0.start && r.2 <= area.0.end && r.1 >= area.1.start && r.3 <= area.1.end
    };
    let marker_boxes: Vec<Rect> = markers
        .iter()
        .map(|&(x, y)| {
            let r = MARKER_RADIUS;
            (x - r, y - r, x + r, y + r)
        })
        .collect();
    let gap = MARKER_RADIUS + 3;
    let mut placed: Vec<Rect> = Vec::with_capacity(markers.len());
    for (i, (&(x, y), &width)) in markers.iter().zip(widths).enumerate() {
        let free = |anchor| {
            let r = label(anchor, width);
            inside(r)
                && !placed.iter().any(|&p| overlaps(p, r))
                && !marker_boxes
                    .iter()
                    .enumerate()
                    .any(|(j, &m)| j != i && overlaps(m, r))
        };
        let candidates = [
            (x + gap, y),
            (x - gap - width, y),
            (x - width / 2, y - gap - LABEL_HALF_HEIGHT),
            (x - width / 2, y + gap + LABEL_HALF_HEIGHT),
        ];
        let anchor = candidates
            .into_iter()
            .find(|&a| free(a))
            .unwrap_or_else(|| {
                let mut anchor = (x + gap, y);
                while placed.iter().any(|&p| overlaps(p, label(anchor, width))) {
                    anchor.1 += 2 * LABEL_HALF_HEIGHT;
                }
                anchor
            });
        placed.push(label(anchor, width));
    }
    placed
        .iter()
        .map(|r| (r.0, r.1 + LABEL_HALF_HEIGHT))
        .collect()
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
    left: u32,
    y: i32,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let (width, _) = root.dim_in_pixel();
    let (mut x, mut y) = (left as i32, y);
    for (s, name) in chart.series.iter().enumerate() {
        let (text_width, _) = root.estimate_text_size(name, &style)?;
        let entry = 22 + text_width as i32 + 28;
        if x + entry > width as i32 - 20 && x > left as i32 {
            x = left as i32;
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
    let name_style =
        TextStyle::from((FONT, 15).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    let mut left = LEFT;
    for name in &chart.groups {
        left = left.max(root.estimate_text_size(name, &name_style)?.0 + 24);
    }
    draw_legend(root, chart, left, 50)?;
    let mut plot = ChartBuilder::on(root)
        .margin(12)
        .margin_top(TOP as i32 - 12)
        .margin_right(40)
        .x_label_area_size(45)
        .y_label_area_size(left)
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
                TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
        });
        plot.draw_series(figures)?;
    }

    // Group names, right-aligned left of the plot, centred on their bars.
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

    #[test]
    fn scatter_labels_cover_no_marker_no_other_label_and_stay_inside() {
        // Three models of nearly equal size, and one at the plot's right edge.
        let markers = [(100, 100), (150, 104), (130, 120), (590, 300)];
        let widths = [80; 4];
        let area = (0..600, 0..400);
        let anchors = place_labels(&markers, &widths, area.clone());
        let boxes: Vec<_> = anchors
            .iter()
            .zip(widths)
            .map(|(&(x, y), w)| (x, y - LABEL_HALF_HEIGHT, x + w, y + LABEL_HALF_HEIGHT))
            .collect();
        let overlaps = |a: (i32, i32, i32, i32), b: (i32, i32, i32, i32)| {
            a.0 < b.2 && b.0 < a.2 && a.1 < b.3 && b.1 < a.3
        };
        for (i, &b) in boxes.iter().enumerate() {
            assert!(
                area.0.contains(&b.0) && b.2 <= area.0.end,
                "label {i} outside: {b:?}"
            );
            for (j, &(x, y)) in markers.iter().enumerate() {
                let r = MARKER_RADIUS;
                assert!(
                    !overlaps(b, (x - r, y - r, x + r, y + r)),
                    "label {i} {b:?} covers marker {j}"
                );
            }
            for (j, &other) in boxes.iter().enumerate().skip(i + 1) {
                assert!(!overlaps(b, other), "labels {i} and {j} overlap");
            }
        }
        // The first label cannot go right (the second marker is there).
        assert!(anchors[0].0 < markers[0].0, "{anchors:?}");
        assert!(anchors[3].0 < markers[3].0, "{anchors:?}");
    }

    #[test]
    fn a_scatter_marks_families_and_this_run_apart() {
        let dir = tempfile::tempdir().unwrap();
        let point = |label: &str, series: &str, measured, x, y| ScatterPoint {
            label: label.into(),
            series: series.into(),
            measured,
            x,
            y,
        };
        let chart = Scatter {
            title: "Mean zero-shot top-1 against parameters".into(),
            x_label: "parameters (millions, log scale)".into(),
            y_label: "mean top-1 (%)".into(),
            points: vec![
                point("RN50", "ResNet", false, 102.01, 57.3),
                point("ViT-L/14", "ViT", false, 427.62, 71.2),
                point("tiny", "ViT", true, 0.05, 9.5),
            ],
        };
        let stem = dir.path().join("scatter");
        write_scatter(&chart, &stem).unwrap();
        let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
        for text in [
            "ResNet (published)",
            "ViT (this run)",
            "RN50 57.3",
            "tiny 9.5",
        ] {
            assert!(svg.contains(text), "no {text} in the SVG");
        }
        let png = image::open(stem.with_extension("png")).unwrap();
        assert_eq!((png.width(), png.height()), (WIDTH, SCATTER_HEIGHT));
        // The published ResNet is hollow, the run's ViT filled: both colours drawn.
        let pixels = png.to_rgb8();
        for family in FAMILIES {
            let RGBColor(r, g, b) = family_colour(family);
            assert!(
                pixels.pixels().any(|p| p.0 == [r, g, b]),
                "no {family} marker"
            );
        }
    }
}
