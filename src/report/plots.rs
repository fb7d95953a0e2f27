//! Charts for the report, drawn with `plotters`: line charts as inline SVG, heatmaps
//! (log-mel spectrograms) as PNG, since a 80 × 200 grid of SVG rectangles would weigh
//! more than the rest of the report.

use base64::Engine;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// Series colours, colour-blind safe (Okabe–Ito).
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

fn plot_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Runtime(format!("plot: {e:?}"))
}

/// One named series of (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart as an SVG document string. Non-finite points are skipped.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    size: (u32, u32),
) -> Result<String> {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().filter(finite).copied())
        .collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in &all {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if all.is_empty() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    // A flat series still gets a readable axis: pad by 1% of its level at least.
    let pad = ((y1 - y0) * 0.05)
        .max(y1.abs().max(y0.abs()) * 0.01)
        .max(1e-6);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(plot_err)?;
        for (i, s) in series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().filter(finite).copied(),
                    colour.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(RGBColor(200, 200, 200))
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(plot_err)?;
        }
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// A waveform as min/max envelopes per pixel column, for a line chart.
pub fn waveform_series(name: &str, y: &[f32], sample_rate: u32, columns: usize) -> Series {
    let columns = columns.max(1);
    let per = y.len().div_ceil(columns).max(1);
    let mut points = Vec::with_capacity(2 * columns);
    for (c, chunk) in y.chunks(per).enumerate() {
        let t = (c * per) as f64 / f64::from(sample_rate);
        let (lo, hi) = chunk
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        points.push((t, f64::from(lo)));
        points.push((t, f64::from(hi)));
    }
    Series {
        name: name.into(),
        points,
    }
}

/// A `[rows][cols]` heatmap (row 0 at the bottom, as a spectrogram's lowest band), as a
/// base64 PNG data URI. Values are clamped to `[lo, hi]` and coloured with viridis.
pub fn heatmap_png(
    values: &[f32],
    rows: usize,
    cols: usize,
    lo: f32,
    hi: f32,
    scale: u32,
) -> Result<String> {
    if rows == 0 || cols == 0 || values.len() != rows * cols {
        return Err(Error::Runtime(
            "heatmap: shape does not match the data".into(),
        ));
    }
    let (w, h) = (cols as u32 * scale, rows as u32 * scale);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        for r in 0..rows {
            for c in 0..cols {
                let v = ((values[r * cols + c] - lo) / (hi - lo).max(1e-6)).clamp(0.0, 1.0);
                let colour: RGBColor = ViridisRGB.get_color(f64::from(v));
                let (x, y) = (
                    c as i32 * scale as i32,
                    (rows - 1 - r) as i32 * scale as i32,
                );
                root.draw(&Rectangle::new(
                    [(x, y), (x + scale as i32, y + scale as i32)],
                    colour.filled(),
                ))
                .map_err(plot_err)?;
            }
        }
        root.present().map_err(plot_err)?;
    }
    let img = image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| Error::Runtime("heatmap: buffer size".into()))?;
    png_data_uri(&img)
}

/// An RGB image as a base64 PNG data URI.
pub fn png_data_uri(img: &image::RgbImage) -> Result<String> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::Runtime(format!("png: {e}")))?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// WAV bytes as a data URI for an `<audio>` element.
pub fn wav_data_uri(wav: &[u8]) -> String {
    format!(
        "data:audio/wav;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(wav)
    )
}
