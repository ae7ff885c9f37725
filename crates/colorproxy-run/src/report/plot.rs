//! Plots with real text (plotters, DejaVu Sans compiled in): line charts with axes, labels, a
//! legend and marked iterations (learning-rate drops), written as PNG (and SVG beside it).
use std::path::Path;
use std::sync::Once;

use crate::{Context, RunError};
use plotters::coord::Shift;
use plotters::prelude::*;

/// DejaVu Sans (Bitstream Vera licence, `assets/fonts/DejaVu-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse; a failure would only lose the text.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    /// `(x, y)`, in x order; non-finite values are left out.
    pub points: Vec<(f64, f64)>,
    pub colour: (u8, u8, u8),
}

impl Series {
    pub fn new(label: &str, colour: (u8, u8, u8), points: Vec<(f64, f64)>) -> Self {
        let points = points.into_iter().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        Self { label: label.into(), points, colour }
    }
}

/// A line chart: series against a shared x axis, with vertical markers.
#[derive(Debug, Clone, Default)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Vertical dashed lines at these x values, with a legend entry (e.g. learning-rate drops).
    pub markers: Vec<f64>,
    pub marker_label: String,
    /// A horizontal reference line (e.g. the majority-class score), with its legend label.
    pub reference: Option<(f64, String)>,
}

fn colour((r, g, b): (u8, u8, u8)) -> RGBColor {
    RGBColor(r, g, b)
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

fn draw_chart<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, c: &LineChart) -> crate::Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| RunError::draw(format!("{e:?}"));
    let xs = c.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).chain(c.markers.iter().copied());
    let (x0, x1) = range(xs);
    let ys =
        c.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).chain(c.reference.iter().map(|r| r.0));
    let (y0, y1) = range(ys);
    let mut chart = ChartBuilder::on(area)
        .caption(&c.title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    let fmt = |v: &f64| {
        if v.abs() >= 100.0 || (v.fract() == 0.0 && v.abs() >= 1.0) {
            format!("{v:.0}")
        } else {
            format!("{v:.3}").trim_end_matches('0').trim_end_matches('.').to_string()
        }
    };
    chart
        .configure_mesh()
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .label_style(("sans-serif", 13))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(e)?;
    for s in &c.series {
        let col = colour(s.colour);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), col.stroke_width(2)))
            .map_err(e)?
            .label(s.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        if s.points.len() < 30 {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, col.filled()))).map_err(e)?;
        }
    }
    if let Some((v, label)) = &c.reference {
        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(DashedLineSeries::new(vec![(x0, *v), (x1, *v)], 6, 4, grey.stroke_width(1)))
            .map_err(e)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(1)));
    }
    for (k, &m) in c.markers.iter().enumerate() {
        let red = RGBColor(200, 40, 40);
        let s = chart
            .draw_series(DashedLineSeries::new(vec![(m, y0), (m, y1)], 5, 5, red.stroke_width(1)))
            .map_err(e)?;
        if k == 0 && !c.marker_label.is_empty() {
            s.label(c.marker_label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(1)));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .position(legend_position(c, (y0, y1)))
        .draw()
        .map_err(e)?;
    Ok(())
}

/// The legend goes to the corner the curves leave free: lower right when the first series ends
/// in the upper half, upper right otherwise.
fn legend_position(c: &LineChart, (y0, y1): (f64, f64)) -> SeriesLabelPosition {
    match c.series.first().and_then(|s| s.points.last()) {
        Some(&(_, y)) if y > (y0 + y1) / 2.0 => SeriesLabelPosition::LowerRight,
        _ => SeriesLabelPosition::UpperRight,
    }
}

/// Charts stacked vertically, each `width x panel_height`, written as `out` (PNG) and the same
/// name with `.svg`.
pub fn write_charts(charts: &[LineChart], width: u32, panel_height: u32, out: &Path) -> crate::Result<()> {
    register_font();
    let size = (width, panel_height * charts.len().max(1) as u32);
    {
        let root = BitMapBackend::new(out, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| RunError::draw(format!("{e:?}")))?;
        for (area, c) in root.split_evenly((charts.len().max(1), 1)).iter().zip(charts) {
            draw_chart(area, c)?;
        }
        root.present()
            .map_err(|e| RunError::draw(format!("{e:?}")))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let svg = out.with_extension("svg");
    let root = SVGBackend::new(&svg, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| RunError::draw(format!("{e:?}")))?;
    for (area, c) in root.split_evenly((charts.len().max(1), 1)).iter().zip(charts) {
        draw_chart(area, c)?;
    }
    root.present()
        .map_err(|e| RunError::draw(format!("{e:?}")))
        .with_context(|| format!("writing {}", svg.display()))?;
    Ok(())
}

/// Per-category ranges: a median with its interquartile range for each named category (e.g.
/// feature shift per layer), drawn as a bar to the median with an error bar from q1 to q3.
pub struct RangeChart {
    pub title: String,
    pub y_label: String,
    /// (category, q1, median, q3)
    pub items: Vec<(String, f64, f64, f64)>,
    pub y_range: (f64, f64),
}

fn draw_ranges<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, c: &RangeChart) -> crate::Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| RunError::draw(format!("{e:?}"));
    let n = c.items.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(&c.title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(60)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), c.y_range.0..c.y_range.1)
        .map_err(e)?;
    let names: Vec<String> = c.items.iter().map(|i| i.0.clone()).collect();
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&|v: &f64| {
            let k = v.round();
            if (v - k).abs() < 1e-6 && k >= 0.0 {
                names.get(k as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(c.y_label.as_str())
        .label_style(("sans-serif", 12))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(e)?;
    let blue = RGBColor(30, 90, 200);
    chart
        .draw_series(c.items.iter().enumerate().filter(|(_, i)| i.2.is_finite()).map(|(k, i)| {
            let x = k as f64;
            Rectangle::new([(x - 0.3, 0.0f64.max(c.y_range.0)), (x + 0.3, i.2)], blue.mix(0.6).filled())
        }))
        .map_err(e)?
        .label("median over channels")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], blue.mix(0.6).filled()));
    chart
        .draw_series(
            c.items
                .iter()
                .enumerate()
                .filter(|(_, i)| i.1.is_finite() && i.3.is_finite())
                .map(|(k, i)| ErrorBar::new_vertical(k as f64, i.1, i.2, i.3, BLACK.stroke_width(2), 10)),
        )
        .map_err(e)?
        .label("interquartile range")
        .legend(|(x, y)| PathElement::new(vec![(x + 7, y - 6), (x + 7, y + 6)], BLACK.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(e)?;
    Ok(())
}

/// A [`RangeChart`] as `out` (PNG) and the same name with `.svg`.
pub fn write_range_chart(c: &RangeChart, width: u32, height: u32, out: &Path) -> crate::Result<()> {
    register_font();
    {
        let root = BitMapBackend::new(out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| RunError::draw(format!("{e:?}")))?;
        draw_ranges(&root, c)?;
        root.present()
            .map_err(|e| RunError::draw(format!("{e:?}")))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let svg = out.with_extension("svg");
    let root = SVGBackend::new(&svg, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| RunError::draw(format!("{e:?}")))?;
    draw_ranges(&root, c)?;
    root.present()
        .map_err(|e| RunError::draw(format!("{e:?}")))
        .with_context(|| format!("writing {}", svg.display()))?;
    Ok(())
}
