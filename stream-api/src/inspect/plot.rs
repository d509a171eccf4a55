//! `inspect --plot`: chosen parameters drawn as time plots into a PNG, one panel per parameter
//! stacked on a shared time axis (seconds since the first sample, or since a lap marker just
//! before it, such as the session's "Out Lap"), the parameter's units on
//! its y axis, and lap markers as vertical lines across every panel.
//!
//! Drawn into an RGB buffer and encoded with `png`, with a bundled font (DejaVu Sans,
//! `stream-api/assets/`), so no system font or image library is needed and the image looks
//! the same on every machine.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::time::utc;
use super::values::{Lap, Series};

/// Image width in pixels.
const WIDTH: u32 = 1400;
/// Height of one parameter's panel in pixels.
const PANEL_HEIGHT: u32 = 260;
/// Height of the title band above the panels.
const TITLE_HEIGHT: u32 = 44;
/// More panels than this would not fit on a screen; ask for fewer parameters instead.
pub const MAX_PANELS: usize = 16;

/// The font every label is drawn with (Bitstream Vera licence, `assets/DejaVuSans.LICENSE`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// One line colour per panel, cycled; dark enough to read on white.
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 130, 140),
];
/// Lap marker lines and labels.
const LAP_COLOUR: RGBColor = RGBColor(230, 120, 0);

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Nothing to plot.
    #[error("--plot needs at least one parameter name")]
    NoParameters,
    /// Too many panels for one image.
    #[error("{0} parameters asked; a plot holds at most {MAX_PANELS} panels")]
    TooManyPanels(usize),
    /// None of the chosen parameters has a sample.
    #[error("the chosen parameters have no samples in the recording")]
    NoSamples,
    /// The bundled font did not load (a build problem, not the user's).
    #[error("the bundled plot font could not be loaded")]
    Font,
    /// Drawing failed.
    #[error("drawing the plot: {0}")]
    Draw(String),
    /// The file could not be created or written.
    #[error("writing {path}: {source}")]
    Write {
        /// The PNG path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// PNG encoding failed.
    #[error("encoding {path}: {source}")]
    Encode {
        /// The PNG path.
        path: String,
        /// Why.
        source: png::EncodingError,
    },
}

/// Size of the image `plot_png` draws for `panels` parameters: (width, height) in pixels.
pub fn image_size(panels: usize) -> (u32, u32) {
    (WIDTH, TITLE_HEIGHT + PANEL_HEIGHT * panels as u32)
}

/// Draws `series` (one panel each, in order) with `laps` and writes the PNG to `path`.
pub fn plot_png(series: &[Series], laps: &[Lap], path: &Path) -> Result<(), PlotError> {
    if series.is_empty() {
        return Err(PlotError::NoParameters);
    }
    if series.len() > MAX_PANELS {
        return Err(PlotError::TooManyPanels(series.len()));
    }
    let times = series
        .iter()
        .flat_map(|s| s.samples.iter().map(|(t, _)| *t));
    let (Some(first), Some(last)) = (times.clone().min(), times.max()) else {
        return Err(PlotError::NoSamples);
    };
    load_font()?;
    let (width, height) = image_size(series.len());
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    let origin = axis_origin(first, last, laps);
    draw(&mut pixels, (width, height), series, laps, (origin, last)).map_err(PlotError::Draw)?;
    encode(&pixels, (width, height), path)
}

/// Registers the bundled font once per process.
fn load_font() -> Result<(), PlotError> {
    static LOADED: OnceLock<bool> = OnceLock::new();
    let ok = *LOADED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

fn draw(
    pixels: &mut [u8],
    size: (u32, u32),
    series: &[Series],
    laps: &[Lap],
    (origin, last): (u64, u64),
) -> Result<(), String> {
    let root = BitMapBackend::with_buffer(pixels, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let title = format!("time since {} (UTC)", utc(origin));
    let root = root
        .titled(&title, (FAMILY, 22))
        .map_err(|e| e.to_string())?;
    let span_s = seconds(last, origin).max(1e-3);
    let panels = root.split_evenly((series.len(), 1));
    for (index, (panel, s)) in panels.iter().zip(series).enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let last_panel = index + 1 == series.len();
        draw_panel(panel, s, laps, origin, span_s, colour, last_panel)
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

type Panel<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult =
    Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

fn draw_panel(
    panel: &Panel<'_>,
    series: &Series,
    laps: &[Lap],
    origin: u64,
    span_s: f64,
    colour: RGBColor,
    last_panel: bool,
) -> DrawResult {
    let (low, high) = value_range(&series.samples);
    let mut chart = ChartBuilder::on(panel)
        .margin_left(12)
        .margin_right(24)
        .margin_top(6)
        .caption(&series.identifier, (FAMILY, 18))
        .x_label_area_size(if last_panel { 44 } else { 26 })
        .y_label_area_size(96)
        .build_cartesian_2d(0.0..span_s, low..high)?;
    let units = if series.units.is_empty() {
        "(no unit)".to_owned()
    } else {
        series.units.clone()
    };
    chart
        .configure_mesh()
        .x_desc(if last_panel { "time [s]" } else { "" })
        .y_desc(units)
        .x_labels(14)
        .y_labels(6)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    let points = series
        .samples
        .iter()
        .map(|(t, v)| (seconds(*t, origin), *v));
    chart.draw_series(LineSeries::new(points, colour.stroke_width(1)))?;
    for lap in laps.iter().filter(|l| l.time_ns >= origin) {
        let x = seconds(lap.time_ns, origin);
        if x > span_s {
            continue;
        }
        chart.draw_series(LineSeries::new(
            [(x, low), (x, high)],
            LAP_COLOUR.stroke_width(2),
        ))?;
        let style = TextStyle::from((FAMILY, 14).into_font()).color(&LAP_COLOUR);
        chart.draw_series(std::iter::once(Text::new(
            format!(" {}", lap.label),
            (x, high),
            style,
        )))?;
    }
    Ok(())
}

/// The y range: the values' with a margin, never empty.
fn value_range(samples: &[(u64, f64)]) -> (f64, f64) {
    let finite = samples.iter().map(|(_, v)| *v).filter(|v| v.is_finite());
    let low = finite.clone().fold(f64::INFINITY, f64::min);
    let high = finite.fold(f64::NEG_INFINITY, f64::max);
    if !(low.is_finite() && high.is_finite()) {
        return (0.0, 1.0);
    }
    let margin = if high > low {
        (high - low) * 0.08
    } else {
        low.abs().max(1.0) * 0.1
    };
    (low - margin, high + margin)
}

/// Where the time axis starts: at the first sample, or earlier at a lap marker that precedes it
/// by less than the samples' span. The session's "Out Lap" is stamped with the session's first
/// sample, which may belong to a parameter not plotted; without this it would fall off the axis.
fn axis_origin(first: u64, last: u64, laps: &[Lap]) -> u64 {
    let span = last - first;
    laps.iter()
        .map(|l| l.time_ns)
        .filter(|&t| t < first && first - t <= span)
        .min()
        .unwrap_or(first)
}

/// An axis label without trailing zeros (`4000`, `2.5`), which plotters would print as
/// `4000.0`.
fn tick(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

fn seconds(time: u64, origin: u64) -> f64 {
    time.saturating_sub(origin) as f64 / 1e9
}

fn encode(pixels: &[u8], (width, height): (u32, u32), path: &Path) -> Result<(), PlotError> {
    let shown = path.display().to_string();
    let file = File::create(path).map_err(|source| PlotError::Write {
        path: shown.clone(),
        source,
    })?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let encoded = encoder.write_header().and_then(|mut writer| {
        writer.write_image_data(pixels)?;
        writer.finish()
    });
    encoded.map_err(|source| match source {
        png::EncodingError::IoError(source) => PlotError::Write {
            path: shown,
            source,
        },
        source => PlotError::Encode {
            path: shown,
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_drop_trailing_zeros_and_ranges_are_never_empty() {
        let ticks: Vec<String> = [4000.0, 2.5, -0.0000001, 0.125, -20.0].map(tick).into();
        assert_eq!(ticks, ["4000", "2.5", "0", "0.125", "-20"]);
        assert_eq!(value_range(&[(0, 5.0), (1, 5.0)]), (4.5, 5.5));
        let lap = |time_ns| Lap {
            time_ns,
            label: "Out Lap".to_owned(),
        };
        assert_eq!(axis_origin(1_000, 5_000, &[lap(990)]), 990, "just before");
        assert_eq!(axis_origin(1_000, 5_000, &[lap(1_500)]), 1_000, "inside");
        assert_eq!(
            axis_origin(10_000, 15_000, &[lap(10)]),
            10_000,
            "long before"
        );
        assert_eq!(value_range(&[(0, f64::NAN)]), (0.0, 1.0));
        let (low, high) = value_range(&[(0, 0.0), (1, 100.0)]);
        assert!(low < 0.0 && high > 100.0);
    }
}
