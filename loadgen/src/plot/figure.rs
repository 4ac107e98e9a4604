//! A chart as data (a grid of panels holding lines, bars and guides, and one legend beside
//! them) and its drawing with plotters: the same code writes the SVG and the PNG.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{
    KeyPointHint, KeyPointWeight, NoDefaultFormatting, Ranged, ValueFormatter,
};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{GUIDE, GUIDE_LINE, Marker, SeriesStyle};

/// A panel's default size in pixels, axes and title included.
pub const PANEL: (u32, u32) = (560, 400);
/// The legend column right of the panels.
const LEGEND_WIDTH: u32 = 240;
/// The figure's title and subtitle.
const HEADER: u32 = 64;
const FONT: &str = "sans-serif";
/// Pixels between a bar's top and its first line of text, and between lines.
const BAR_TEXT_LINE: i32 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Powers of two (executors).
    Log2,
    /// Decades, ticks at 1, 2, 5 × 10^k.
    Log10,
}

/// One axis of a panel.
#[derive(Debug, Clone)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
    /// Fixed limits; otherwise they follow the data.
    pub limits: Option<(f64, f64)>,
    /// A linear axis that starts at zero whatever the data.
    pub from_zero: bool,
    /// Category names at 0, 1, 2, ... (a bar chart's x axis).
    pub categories: Vec<String>,
}

impl Axis {
    #[must_use]
    pub fn new(label: impl Into<String>, scale: Scale) -> Self {
        Self {
            label: label.into(),
            scale,
            limits: None,
            from_zero: false,
            categories: Vec::new(),
        }
    }

    /// A linear axis from zero.
    #[must_use]
    pub fn from_zero(label: impl Into<String>) -> Self {
        Self {
            from_zero: true,
            ..Self::new(label, Scale::Linear)
        }
    }

    /// A category axis (bars at 0, 1, 2, ...).
    #[must_use]
    pub fn categories(label: impl Into<String>, names: Vec<String>) -> Self {
        Self {
            categories: names,
            ..Self::new(label, Scale::Linear)
        }
    }

    #[must_use]
    pub fn limits(mut self, lo: f64, hi: f64) -> Self {
        self.limits = Some((lo, hi));
        self
    }
}

/// A measured point and, when known, the confidence interval of its y.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub interval: Option<(f64, f64)>,
}

/// One series of a panel.
#[derive(Debug, Clone)]
pub struct Line {
    pub style: SeriesStyle,
    /// In drawing order (sorted by x).
    pub points: Vec<Point>,
    pub markers: bool,
}

/// One bar, at category `x` (plus an offset within a group).
#[derive(Debug, Clone)]
pub struct Bar {
    pub x: f64,
    pub width: f64,
    pub value: f64,
    pub interval: Option<(f64, f64)>,
    pub color: RGBColor,
    /// Lines written above the bar.
    pub text: Vec<String>,
}

/// A line of text at a category with no bar (e.g. a reference that could not run).
#[derive(Debug, Clone)]
pub struct Note {
    pub x: f64,
    pub text: String,
}

/// What the data is read against.
#[derive(Debug, Clone)]
pub enum Guide {
    /// A dashed horizontal line at `y` (e.g. ideal efficiency), named in the legend.
    Level { y: f64, label: String },
    /// The dashed diagonal y = x (achieved = offered), named in the legend.
    Diagonal { label: String },
    /// A dashed vertical line at `x`, the region right of it shaded and `label` written in it
    /// (executors beyond the machine's cores).
    Beyond { x: f64, label: String },
}

/// One plot of a figure.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub lines: Vec<Line>,
    pub bars: Vec<Bar>,
    pub notes: Vec<Note>,
    pub guides: Vec<Guide>,
}

impl Panel {
    #[must_use]
    pub fn new(title: impl Into<String>, x: Axis, y: Axis) -> Self {
        Self {
            title: title.into(),
            x,
            y,
            lines: Vec::new(),
            bars: Vec::new(),
            notes: Vec::new(),
            guides: Vec::new(),
        }
    }

    /// Whether there is anything to draw.
    #[must_use]
    pub fn has_data(&self) -> bool {
        self.lines.iter().any(|l| !l.points.is_empty()) || !self.bars.is_empty()
    }
}

/// What a legend entry shows beside its label.
#[derive(Debug, Clone, Copy)]
pub enum Swatch {
    /// A line, with a marker when `markers`.
    Line {
        style: SeriesStyle,
        markers: bool,
    },
    Bar(RGBColor),
}

#[derive(Debug, Clone)]
pub struct LegendEntry {
    pub label: String,
    pub swatch: Swatch,
}

/// A whole image: a title, panels in a grid (row by row), and a legend column on the right
/// that never covers data.
#[derive(Debug, Clone)]
pub struct Figure {
    pub title: String,
    pub subtitle: String,
    pub columns: usize,
    pub panels: Vec<Panel>,
    pub panel_size: (u32, u32),
    pub legend_title: Option<String>,
    /// The series; the guides' entries are added when drawn.
    pub legend: Vec<LegendEntry>,
    /// Text under the legend (e.g. references that could not run).
    pub notes: Vec<String>,
    /// Panels of one column share their y range, so rows compare at a glance.
    pub share_y: bool,
}

impl Figure {
    fn rows(&self) -> usize {
        self.panels.len().div_ceil(self.columns.max(1))
    }

    /// Width and height in pixels.
    #[must_use]
    pub fn size(&self) -> (u32, u32) {
        let columns = u32::try_from(self.columns.max(1)).unwrap_or(1);
        let rows = u32::try_from(self.rows().max(1)).unwrap_or(1);
        (
            columns * self.panel_size.0 + LEGEND_WIDTH,
            HEADER + rows * self.panel_size.1 + 8,
        )
    }
}

/// Writes `<stem>.svg` and `<stem>.png` in `dir`; returns their paths.
pub fn save(figure: &Figure, dir: &Path, stem: &str) -> anyhow::Result<Vec<PathBuf>> {
    let size = figure.size();
    let svg = dir.join(format!("{stem}.svg"));
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw(figure, &root)
            .and_then(|()| root.present())
            .map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", svg.display()))?;
    }
    let png = dir.join(format!("{stem}.png"));
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        draw(figure, &root)
            .and_then(|()| root.present())
            .map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", png.display()))?;
    }
    Ok(vec![svg, png])
}

fn draw<DB: DrawingBackend>(figure: &Figure, root: &DrawingArea<DB, Shift>) -> DrawResult<(), DB> {
    root.fill(&WHITE)?;
    let (width, _) = root.dim_in_pixel();
    let (header, body) = root.split_vertically(HEADER);
    header.draw(&Text::new(
        figure.title.as_str(),
        (16, 10),
        (FONT, 21).into_font().color(&BLACK),
    ))?;
    header.draw(&Text::new(
        figure.subtitle.as_str(),
        (16, 38),
        (FONT, 13).into_font().color(&GUIDE),
    ))?;
    let (plots, legend) = body.split_horizontally(width - LEGEND_WIDTH);
    let columns = figure.columns.max(1);
    let cells = plots.split_evenly((figure.rows().max(1), columns));
    let ranges = y_ranges(figure);
    for ((panel, cell), y) in figure.panels.iter().zip(&cells).zip(ranges) {
        draw_panel(cell, panel, y)?;
    }
    draw_legend(&legend, figure)
}

/// Each panel's y range: its own, or its column's when the figure shares them.
fn y_ranges(figure: &Figure) -> Vec<(f64, f64)> {
    let own: Vec<(f64, f64)> = figure.panels.iter().map(y_range).collect();
    if !figure.share_y {
        return own;
    }
    let columns = figure.columns.max(1);
    (0..own.len())
        .map(|i| {
            let same: Vec<(f64, f64)> = (0..own.len())
                .filter(|j| j % columns == i % columns && figure.panels[*j].has_data())
                .map(|j| own[j])
                .collect();
            if same.is_empty() {
                own[i]
            } else {
                same.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| {
                    (lo.min(r.0), hi.max(r.1))
                })
            }
        })
        .collect()
}

fn x_range(panel: &Panel) -> (f64, f64) {
    let axis = &panel.x;
    if !axis.categories.is_empty() {
        #[allow(clippy::cast_precision_loss)]
        return (-0.5, axis.categories.len() as f64 - 0.5);
    }
    let mut values: Vec<f64> = panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.x))
        .collect();
    values.extend(panel.bars.iter().map(|b| b.x));
    range(axis, &values, 0.0)
}

fn y_range(panel: &Panel) -> (f64, f64) {
    let mut values: Vec<f64> = Vec::new();
    for point in panel.lines.iter().flat_map(|l| &l.points) {
        values.push(point.y);
        if let Some((lo, hi)) = point.interval {
            values.extend([lo, hi]);
        }
    }
    let mut text_lines = 0;
    for bar in &panel.bars {
        values.push(bar.value);
        if let Some((lo, hi)) = bar.interval {
            values.extend([lo, hi]);
        }
        text_lines = text_lines.max(bar.text.len());
    }
    for guide in &panel.guides {
        if let Guide::Level { y, .. } = guide {
            values.push(*y);
        }
    }
    // Room at the top for the text over bars and for the label of a `Beyond` guide.
    let beyond = panel
        .guides
        .iter()
        .any(|g| matches!(g, Guide::Beyond { .. }));
    #[allow(clippy::cast_precision_loss)]
    let headroom = 0.08 * text_lines as f64 + if beyond { 0.1 } else { 0.0 };
    range(&panel.y, &values, headroom)
}

/// The limits of an axis over `values`, with a little padding and `headroom` (a fraction of
/// the span) above.
fn range(axis: &Axis, values: &[f64], headroom: f64) -> (f64, f64) {
    if let Some(limits) = axis.limits {
        return limits;
    }
    let finite = values.iter().copied().filter(|v| v.is_finite());
    match axis.scale {
        Scale::Linear => {
            let (mut lo, mut hi) =
                finite.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
            if lo > hi {
                (lo, hi) = (0.0, 1.0);
            }
            if axis.from_zero {
                lo = lo.min(0.0);
            }
            if hi - lo < 1e-12 {
                hi = lo + if lo == 0.0 { 1.0 } else { lo.abs() * 0.5 };
            }
            let span = hi - lo;
            let pad = span * 0.04;
            let lo = if axis.from_zero && lo >= 0.0 {
                lo
            } else {
                lo - pad
            };
            (lo, hi + pad + span * headroom)
        }
        Scale::Log2 | Scale::Log10 => {
            let (lo, hi) = finite
                .filter(|v| *v > 0.0)
                .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let (lo, hi) = if lo > hi { (1.0, 10.0) } else { (lo, hi) };
            let pad = if axis.scale == Scale::Log2 { 1.3 } else { 1.25 };
            let span = (hi * pad / (lo / pad)).max(2.0);
            (lo / pad, hi * pad * span.powf(headroom))
        }
    }
}

/// An axis as plotters maps it: linear or logarithmic, with ticks at round values.
#[derive(Debug, Clone)]
struct Coord {
    lo: f64,
    hi: f64,
    scale: Scale,
    categories: Vec<String>,
}

impl Coord {
    fn new(axis: &Axis, (lo, hi): (f64, f64)) -> Self {
        Self {
            lo,
            hi,
            scale: axis.scale,
            categories: axis.categories.clone(),
        }
    }

    fn transform(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear => v,
            Scale::Log2 => v.max(f64::MIN_POSITIVE).log2(),
            Scale::Log10 => v.max(f64::MIN_POSITIVE).log10(),
        }
    }

    fn contains(&self, v: f64) -> bool {
        v >= self.lo.min(self.hi) && v <= self.hi.max(self.lo)
    }

    /// Major ticks, at most about `max` of them.
    fn ticks(&self, max: usize) -> Vec<f64> {
        #[allow(clippy::cast_precision_loss)]
        if !self.categories.is_empty() {
            return (0..self.categories.len()).map(|i| i as f64).collect();
        }
        let max = max.clamp(2, 9);
        match self.scale {
            Scale::Linear => linear_ticks(self.lo, self.hi, max),
            Scale::Log2 => {
                let powers: Vec<f64> = (self.lo.log2().ceil() as i32
                    ..=self.hi.log2().floor() as i32)
                    .map(|k| 2f64.powi(k))
                    .collect();
                thin(powers, max)
            }
            Scale::Log10 => {
                let decades = self.lo.log10().floor() as i32..=self.hi.log10().ceil() as i32;
                let pick = |multiples: &[f64]| -> Vec<f64> {
                    decades
                        .clone()
                        .flat_map(|k| multiples.iter().map(move |m| m * 10f64.powi(k)))
                        .filter(|v| self.contains(*v))
                        .collect()
                };
                let fine = pick(&[1.0, 2.0, 5.0]);
                if fine.len() > max {
                    thin(pick(&[1.0]), max)
                } else if fine.len() < 3 {
                    thin(pick(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]), max)
                } else {
                    fine
                }
            }
        }
    }
}

/// Every k-th value so that at most `max` remain.
fn thin(values: Vec<f64>, max: usize) -> Vec<f64> {
    let step = values.len().div_ceil(max.max(1)).max(1);
    values.into_iter().step_by(step).collect()
}

fn linear_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    #[allow(clippy::cast_precision_loss)]
    let raw = (hi - lo) / (max.saturating_sub(1).max(1)) as f64;
    if !(raw > 0.0 && raw.is_finite()) {
        return vec![lo];
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    #[allow(clippy::cast_precision_loss)]
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick or bar label: `0.25`, `12`, `2500`, `25k`, `1.2M`.
#[must_use]
pub fn number(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    let a = v.abs();
    if a < 1e-12 {
        "0".to_owned()
    } else if a >= 1e6 {
        format!("{}M", trim(format!("{:.1}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.2}"))
    } else if a >= 1e-3 {
        trim(format!("{v:.3}"))
    } else {
        format!("{v:.0e}")
    }
}

impl Ranged for Coord {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let (a, b) = (self.transform(self.lo), self.transform(self.hi));
        let fraction = (self.transform(*value) - a) / (b - a);
        let pixels = fraction * f64::from(limit.1 - limit.0);
        #[allow(clippy::cast_possible_truncation)]
        let offset = pixels.clamp(-1e6, 1e6).round() as i32;
        limit.0 + offset
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        match hint.weight() {
            // Grid lines at the labelled ticks only.
            KeyPointWeight::Any => Vec::new(),
            KeyPointWeight::Bold => self.ticks(hint.max_num_points()),
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Coord {
    fn format_ext(&self, value: &f64) -> String {
        if self.categories.is_empty() {
            return number(*value);
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let index = value.round().max(0.0) as usize;
        self.categories.get(index).cloned().unwrap_or_default()
    }
}

type Plot<DB> = DrawingArea<DB, Cartesian2d<Coord, Coord>>;

/// Draws a marker of `style` at `$at` (any coordinate type) on `$area`.
macro_rules! marker {
    ($area:expr, $at:expr, $style:expr) => {{
        let style: SeriesStyle = $style;
        let color = style.color;
        let fill = if style.hollow {
            WHITE.filled()
        } else {
            color.filled()
        };
        match style.marker {
            Marker::Circle => {
                $area.draw(&(EmptyElement::at($at) + Circle::new((0, 0), 4, fill)))?;
                $area.draw(&(EmptyElement::at($at) + Circle::new((0, 0), 4, color.stroke_width(1))))
            }
            Marker::Triangle => {
                $area.draw(&(EmptyElement::at($at) + TriangleMarker::new((0, 0), 6, fill)))
            }
            Marker::Square => {
                $area.draw(&(EmptyElement::at($at) + Rectangle::new([(-4, -4), (4, 4)], fill)))?;
                $area.draw(
                    &(EmptyElement::at($at)
                        + Rectangle::new([(-4, -4), (4, 4)], color.stroke_width(2))),
                )
            }
        }
    }};
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    y_range: (f64, f64),
) -> DrawResult<(), DB> {
    let x = Coord::new(&panel.x, x_range(panel));
    let y = Coord::new(&panel.y, y_range);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 16))
        .margin(8)
        .margin_right(22)
        .x_label_area_size(46)
        .y_label_area_size(66)
        .build_cartesian_2d(x.clone(), y.clone())?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(&panel.x.label)
        .y_desc(&panel.y.label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .bold_line_style(BLACK.mix(0.1))
        .x_labels(10)
        .y_labels(8);
    if !panel.x.categories.is_empty() {
        mesh.disable_x_mesh();
    }
    mesh.draw()?;
    let plot = chart.plotting_area();
    if !panel.has_data() {
        let (w, h) = plot.dim_in_pixel();
        let centre = (
            i32::try_from(w / 2).unwrap_or(0),
            i32::try_from(h / 2).unwrap_or(0),
        );
        plot.strip_coord_spec().draw(&Text::new(
            "no data",
            centre,
            (FONT, 14)
                .into_font()
                .color(&GUIDE)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    }
    let cores_line = GUIDE.stroke_width(1);
    for guide in &panel.guides {
        match guide {
            Guide::Beyond { x: at, .. } if x.contains(*at) => {
                plot.draw(&Rectangle::new(
                    [(*at, y.lo), (x.hi, y.hi)],
                    GUIDE.mix(0.08).filled(),
                ))?;
                plot.draw(&DashedPathElement::new(
                    vec![(*at, y.lo), (*at, y.hi)],
                    5,
                    4,
                    cores_line,
                ))?;
            }
            Guide::Level { y: level, .. } if y.contains(*level) => {
                plot.draw(&DashedPathElement::new(
                    vec![(x.lo, *level), (x.hi, *level)],
                    7,
                    4,
                    GUIDE_LINE.stroke_width(2),
                ))?;
            }
            Guide::Diagonal { .. } => {
                let (from, to) = (x.lo.max(y.lo), x.hi.min(y.hi));
                if to > from {
                    plot.draw(&DashedPathElement::new(
                        vec![(from, from), (to, to)],
                        7,
                        4,
                        GUIDE_LINE.stroke_width(2),
                    ))?;
                }
            }
            _ => {}
        }
    }
    draw_bars(plot, panel, &y)?;
    for line in &panel.lines {
        draw_line(plot, line, &y)?;
    }
    for guide in &panel.guides {
        if let Guide::Beyond { x: at, label } = guide
            && x.contains(*at)
        {
            // Right of the line when the shaded region has room for the label, otherwise
            // right-aligned at the plot's edge (still over the shaded region's end).
            let style = (FONT, 13).into_font().color(&GUIDE);
            let (width, _) = plot.estimate_text_size(label, &style)?;
            let room = plot.map_coordinate(&(x.hi, y.hi)).0 - plot.map_coordinate(&(*at, y.hi)).0;
            let label = if i32::try_from(width).unwrap_or(i32::MAX) + 12 <= room {
                EmptyElement::at((*at, y.hi)) + Text::new(label.clone(), (6, 5), style)
            } else {
                EmptyElement::at((x.hi, y.hi))
                    + Text::new(
                        label.clone(),
                        (-6, 5),
                        style.pos(Pos::new(HPos::Right, VPos::Top)),
                    )
            };
            plot.draw(&label)?;
        }
    }
    Ok(())
}

fn draw_line<DB: DrawingBackend>(plot: &Plot<DB>, line: &Line, y: &Coord) -> DrawResult<(), DB> {
    let color = line.style.color;
    let visible: Vec<Point> = line
        .points
        .iter()
        .copied()
        .filter(|p| y.scale == Scale::Linear || p.y > 0.0)
        .collect();
    let path: Vec<(f64, f64)> = visible.iter().map(|p| (p.x, p.y)).collect();
    if line.style.dashed {
        plot.draw(&DashedPathElement::new(path, 8, 4, color.stroke_width(2)))?;
    } else {
        plot.draw(&PathElement::new(path, color.stroke_width(2)))?;
    }
    for point in &visible {
        if let Some((lo, hi)) = point.interval {
            error_bar(plot, point.x, (lo, hi), color, y)?;
        }
        if line.markers {
            marker!(plot, (point.x, point.y), line.style)?;
        }
    }
    Ok(())
}

/// A vertical line from `lo` to `hi` with caps, clipped to the axis.
fn error_bar<DB: DrawingBackend>(
    plot: &Plot<DB>,
    x: f64,
    (lo, hi): (f64, f64),
    color: RGBColor,
    y: &Coord,
) -> DrawResult<(), DB> {
    let floor = if y.scale == Scale::Linear {
        y.lo
    } else {
        y.lo.max(f64::MIN_POSITIVE)
    };
    let (lo, hi) = (lo.max(floor), hi.min(y.hi));
    if hi < lo {
        return Ok(());
    }
    let style = color.stroke_width(1);
    plot.draw(&PathElement::new(vec![(x, lo), (x, hi)], style))?;
    for end in [lo, hi] {
        plot.draw(&(EmptyElement::at((x, end)) + PathElement::new(vec![(-4, 0), (4, 0)], style)))?;
    }
    Ok(())
}

fn draw_bars<DB: DrawingBackend>(plot: &Plot<DB>, panel: &Panel, y: &Coord) -> DrawResult<(), DB> {
    let base = if y.scale == Scale::Linear {
        0f64.clamp(y.lo, y.hi)
    } else {
        y.lo
    };
    for bar in &panel.bars {
        let (left, right) = (bar.x - bar.width / 2.0, bar.x + bar.width / 2.0);
        plot.draw(&Rectangle::new(
            [(left, base), (right, bar.value)],
            bar.color.mix(0.85).filled(),
        ))?;
        plot.draw(&Rectangle::new(
            [(left, base), (right, bar.value)],
            bar.color.stroke_width(1),
        ))?;
        if let Some(interval) = bar.interval {
            error_bar(plot, bar.x, interval, BLACK, y)?;
        }
        let top = bar.interval.map_or(bar.value, |(_, hi)| hi.max(bar.value));
        let lines = i32::try_from(bar.text.len()).unwrap_or(0);
        for (i, text) in (0..).zip(&bar.text) {
            plot.draw(
                &(EmptyElement::at((bar.x, top))
                    + Text::new(
                        text.clone(),
                        (0, -4 - BAR_TEXT_LINE * (lines - 1 - i)),
                        (FONT, 12)
                            .into_font()
                            .color(&BLACK)
                            .pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )),
            )?;
        }
    }
    for note in &panel.notes {
        plot.draw(
            &(EmptyElement::at((note.x, base))
                + Text::new(
                    note.text.clone(),
                    (0, -6),
                    (FONT, 12)
                        .into_font()
                        .color(&GUIDE)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )),
        )?;
    }
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    figure: &Figure,
) -> DrawResult<(), DB> {
    let text = (FONT, 13).into_font().color(&BLACK);
    let left = 8;
    let mut y = 36;
    if let Some(title) = &figure.legend_title {
        area.draw(&Text::new(
            title.clone(),
            (left, y),
            (FONT, 14).into_font().color(&GUIDE),
        ))?;
        y += 24;
    }
    let mut entries = figure.legend.clone();
    let guide = SeriesStyle {
        color: GUIDE_LINE,
        dashed: true,
        marker: Marker::Circle,
        hollow: false,
    };
    let mut guides: Vec<String> = Vec::new();
    for g in figure.panels.iter().flat_map(|p| &p.guides) {
        if let Guide::Level { label, .. } | Guide::Diagonal { label } = g
            && !guides.contains(label)
        {
            guides.push(label.clone());
        }
    }
    entries.extend(guides.into_iter().map(|label| LegendEntry {
        label,
        swatch: Swatch::Line {
            style: guide,
            markers: false,
        },
    }));
    for entry in &entries {
        let middle = y + 8;
        match entry.swatch {
            Swatch::Line { style, markers } => {
                let path = vec![(left, middle), (left + 34, middle)];
                if style.dashed {
                    area.draw(&DashedPathElement::new(
                        path,
                        7,
                        4,
                        style.color.stroke_width(2),
                    ))?;
                } else {
                    area.draw(&PathElement::new(path, style.color.stroke_width(2)))?;
                }
                if markers {
                    marker!(area, (left + 17, middle), style)?;
                }
            }
            Swatch::Bar(color) => {
                area.draw(&Rectangle::new(
                    [(left + 6, middle - 7), (left + 28, middle + 7)],
                    color.mix(0.85).filled(),
                ))?;
            }
        }
        area.draw(&Text::new(
            ellipsize(&entry.label, 26),
            (left + 42, middle),
            text.clone().pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        y += 24;
    }
    y += 10;
    for note in &figure.notes {
        for line in wrap(note, 32) {
            area.draw(&Text::new(
                line,
                (left, y),
                (FONT, 12).into_font().color(&GUIDE),
            ))?;
            y += 16;
        }
        y += 4;
    }
    Ok(())
}

fn ellipsize(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max - 1).collect();
        short.push('…');
        short
    }
}

/// Splits `text` into lines of at most about `width` characters, at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coord(lo: f64, hi: f64, scale: Scale) -> Coord {
        Coord {
            lo,
            hi,
            scale,
            categories: Vec::new(),
        }
    }

    #[test]
    fn ticks_fall_on_round_values() {
        assert_eq!(
            coord(0.8, 300.0, Scale::Log2).ticks(10),
            [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]
        );
        // Too many at 1, 2, 5 x 10^k: decades only.
        assert_eq!(
            coord(0.8, 2000.0, Scale::Log10).ticks(10),
            [1.0, 10.0, 100.0, 1000.0]
        );
        assert_eq!(
            coord(0.8, 120.0, Scale::Log10).ticks(10),
            [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        let labels = |ticks: Vec<f64>| ticks.into_iter().map(number).collect::<Vec<_>>();
        assert_eq!(
            labels(linear_ticks(0.0, 1.1, 8)),
            ["0", "0.2", "0.4", "0.6", "0.8", "1"]
        );
        assert_eq!(
            labels(linear_ticks(0.0, 5200.0, 8)),
            ["0", "1000", "2000", "3000", "4000", "5000"]
        );
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(1.5), "1.5");
        assert_eq!(number(2500.0), "2500");
        assert_eq!(number(25_000.0), "25k");
        assert_eq!(number(1_250_000.0), "1.2M");
    }

    #[test]
    fn notes_wrap_at_spaces() {
        assert_eq!(
            wrap("unavailable: ray, celery and dask are not installed", 20),
            ["unavailable: ray,", "celery and dask are", "not installed"]
        );
    }
}
