//! SVG plots of a replayed call: caller F0 and energy against the caller's baseline, speaking
//! rate, and the tone score with its threshold, signal crossings and the handoff marker. Each
//! panel's legend sits in a strip to its right, so it never hides the call's data.

use crate::event::EventKind;
use crate::replay::CallReport;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;

/// A plot could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub struct PlotError(String);

fn err<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError(e.to_string())
}

/// Writes the call's plot to `path`.
pub fn write_call_svg(path: &Path, r: &CallReport, tone_threshold: f64) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, (1100 + LEGEND_W, 980)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (title, body) = root.split_vertically(40);
    title
        .draw_text(
            &format!(
                "warmline replay: {} ({:.1} s)",
                r.call_id,
                r.duration_ms as f64 / 1000.0
            ),
            &("sans-serif", 22).into_font().color(&BLACK),
            (20, 10),
        )
        .map_err(err)?;
    let panels: Vec<_> = body
        .split_evenly((4, 1))
        .iter()
        .map(|a| a.split_horizontally(1100))
        .collect();
    let t_max = (r.duration_ms as f64 / 1000.0).max(1.0);
    let handoff_s = r.events.iter().find_map(|e| match e.kind {
        EventKind::Handoff(_) => Some(e.t_ms as f64 / 1000.0),
        _ => None,
    });
    let signals: Vec<(f64, String)> = r
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Signal(s) => Some((e.t_ms as f64 / 1000.0, s.signal.name().to_owned())),
            _ => None,
        })
        .collect();
    let voiced: Vec<(f64, f64)> = r
        .trace
        .iter()
        .filter(|p| p.f0_hz > 0.0)
        .map(|p| (p.t_ms as f64 / 1000.0, f64::from(p.f0_hz)))
        .collect();
    let f0_max = voiced.iter().map(|p| p.1).fold(200.0f64, f64::max) * 1.1;
    let speech_energy: Vec<(f64, f64)> = r
        .trace
        .iter()
        .map(|p| (p.t_ms as f64 / 1000.0, f64::from(p.energy_db).max(-80.0)))
        .collect();
    let rate: Vec<(f64, f64)> = r
        .trace
        .iter()
        .map(|p| (p.t_ms as f64 / 1000.0, f64::from(p.rate_sps)))
        .collect();
    let tone: Vec<(f64, f64)> = r
        .trace
        .iter()
        .map(|p| (p.t_ms as f64 / 1000.0, f64::from(p.tone)))
        .collect();
    let rate_max = rate.iter().map(|p| p.1).fold(6.0f64, f64::max) * 1.1;

    let baseline_style = ShapeStyle::from(&RGBColor(200, 60, 60)).stroke_width(2);
    let handoff_style = ShapeStyle::from(&RGBColor(220, 0, 0)).stroke_width(3);
    let signal_color = RGBColor(0, 120, 200);
    let handoff_key = handoff_s.map(|h| (Key::Line(handoff_style), format!("handoff at {h:.1} s")));

    // F0
    {
        let (area, key_area) = &panels[0];
        let mut c = panel(area, "Caller F0", 50.0..f0_max, "F0 (Hz)", t_max)?;
        c.draw_series(
            voiced
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 2, BLUE.filled())),
        )
        .map_err(err)?;
        let mut keys = vec![(Key::Dot(BLUE), "F0 (voiced frames)".to_owned())];
        if let Some(b) = r.baseline.filter(|b| b.f0_hz > 0.0) {
            let y = f64::from(b.f0_hz);
            hline(&mut c, y, t_max, baseline_style)?;
            keys.push((
                Key::Line(baseline_style),
                format!("caller baseline {y:.0} Hz"),
            ));
        }
        if let Some(h) = handoff_s {
            vline(&mut c, h, (50.0, f0_max), handoff_style)?;
        }
        keys.extend(handoff_key.clone());
        legend(key_area, &keys)?;
    }
    // Energy
    {
        let (area, key_area) = &panels[1];
        let mut c = panel(area, "Caller energy", -80.0..0.0, "energy (dBFS)", t_max)?;
        line(&mut c, &speech_energy, GREEN.into())?;
        let mut keys = vec![(Key::Line(GREEN.into()), "energy".to_owned())];
        if let Some(b) = r.baseline {
            let y = f64::from(b.energy_db);
            hline(&mut c, y, t_max, baseline_style)?;
            keys.push((
                Key::Line(baseline_style),
                format!("caller baseline {y:.1} dBFS"),
            ));
        }
        if let Some(h) = handoff_s {
            vline(&mut c, h, (-80.0, 0.0), handoff_style)?;
        }
        keys.extend(handoff_key.clone());
        legend(key_area, &keys)?;
    }
    // Rate
    {
        let (area, key_area) = &panels[2];
        let mut c = panel(
            area,
            "Caller speaking rate",
            0.0..rate_max,
            "syllables/s",
            t_max,
        )?;
        line(&mut c, &rate, MAGENTA.into())?;
        let mut keys = vec![(Key::Line(MAGENTA.into()), "speaking rate".to_owned())];
        if let Some(b) = r.baseline.filter(|b| b.rate_sps > 0.0) {
            let y = f64::from(b.rate_sps);
            hline(&mut c, y, t_max, baseline_style)?;
            keys.push((
                Key::Line(baseline_style),
                format!("caller baseline {y:.1} syl/s"),
            ));
        }
        if let Some(h) = handoff_s {
            vline(&mut c, h, (0.0, rate_max), handoff_style)?;
        }
        keys.extend(handoff_key.clone());
        legend(key_area, &keys)?;
    }
    // Tone, threshold, signals, handoff
    {
        let (area, key_area) = &panels[3];
        let caption = "Caller tone score, signals and handoff";
        let mut c = panel(area, caption, 0.0..1.05, "tone score", t_max)?;
        let tone_style = ShapeStyle::from(&BLACK).stroke_width(2);
        line(&mut c, &tone, tone_style)?;
        let th = ShapeStyle::from(&RGBColor(255, 140, 0)).stroke_width(2);
        hline(&mut c, tone_threshold, t_max, th)?;
        // Every crossing gets a marker; a name only when it does not run into the previous
        // name (a tone score hovering at its threshold crosses many times in a few seconds).
        let min_gap_s = t_max * LABEL_GAP_FRACTION;
        let mut last_label: Option<f64> = None;
        c.draw_series(signals.iter().map(|(x, name)| {
            let labelled = last_label.is_none_or(|l| x - l >= min_gap_s);
            if labelled {
                last_label = Some(*x);
            }
            let text = if labelled {
                name.clone()
            } else {
                String::new()
            };
            EmptyElement::at((*x, 0.95))
                + TriangleMarker::new((0, 0), 6, signal_color.filled())
                + Text::new(text, (4, 6), ("sans-serif", 12).into_font())
        }))
        .map_err(err)?;
        if let Some(h) = handoff_s {
            vline(&mut c, h, (0.0, 1.05), handoff_style)?;
        }
        let mut keys = vec![
            (Key::Line(tone_style), "tone score".to_owned()),
            (Key::Line(th), format!("threshold {tone_threshold:.2}")),
            (Key::Triangle(signal_color), "signal crossing".to_owned()),
        ];
        keys.extend(handoff_key);
        legend(key_area, &keys)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One panel over the call's time axis, with its caption and axis descriptions.
fn panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    y: std::ops::Range<f64>,
    y_desc: &str,
    t_max: f64,
) -> Result<Chart<'a, 'b>, PlotError> {
    let mut c = ChartBuilder::on(area)
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .caption(caption, ("sans-serif", 16))
        .build_cartesian_2d(0.0..t_max, y)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("time (s)")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    Ok(c)
}

/// Width of the legend strip to the right of each panel, px.
const LEGEND_W: u32 = 230;
/// Signal-crossing names closer than this share of the call's length to the previous name are
/// left off (their markers stay).
const LABEL_GAP_FRACTION: f64 = 0.04;

/// How a legend entry is drawn.
#[derive(Clone, Copy)]
enum Key {
    Line(ShapeStyle),
    Dot(RGBColor),
    Triangle(RGBColor),
}

/// A line series.
fn line(c: &mut Chart, points: &[(f64, f64)], style: ShapeStyle) -> Result<(), PlotError> {
    c.draw_series(LineSeries::new(points.iter().copied(), style))
        .map_err(err)?;
    Ok(())
}

/// A horizontal reference line (baseline, threshold) across the call.
fn hline(c: &mut Chart, y: f64, t_max: f64, style: ShapeStyle) -> Result<(), PlotError> {
    line(c, &[(0.0, y), (t_max, y)], style)
}

/// A vertical marker (the handoff).
fn vline(c: &mut Chart, x: f64, (y0, y1): (f64, f64), style: ShapeStyle) -> Result<(), PlotError> {
    line(c, &[(x, y0), (x, y1)], style)
}

/// The panel's legend, top-aligned in its strip beside the chart.
fn legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    keys: &[(Key, String)],
) -> Result<(), PlotError> {
    const TOP: i32 = 45;
    const ROW: i32 = 22;
    let font = ("sans-serif", 13).into_font().color(&BLACK);
    for (i, (key, text)) in keys.iter().enumerate() {
        let y = TOP + ROW * i as i32;
        match *key {
            Key::Line(style) => area.draw(&PathElement::new([(6, y), (30, y)], style)),
            Key::Dot(color) => area.draw(&Circle::new((18, y), 3, color.filled())),
            Key::Triangle(color) => area.draw(&TriangleMarker::new((18, y), 5, color.filled())),
        }
        .map_err(err)?;
        area.draw(&Text::new(text.clone(), (38, y - 7), font.clone()))
            .map_err(err)?;
    }
    Ok(())
}
