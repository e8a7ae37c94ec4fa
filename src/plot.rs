//! SVG plots of a replayed call: caller F0 and energy against the caller's baseline, speaking
//! rate, and the tone score with its threshold, signal crossings and the handoff marker.

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
    let root = SVGBackend::new(path, (1100, 980)).into_drawing_area();
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
    let panels = body.split_evenly((4, 1));
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

    // F0
    {
        let mut c = panel(&panels[0], "Caller F0", 50.0..f0_max, "F0 (Hz)", t_max)?;
        c.draw_series(
            voiced
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 2, BLUE.filled())),
        )
        .map_err(err)?
        .label("F0 (voiced frames)")
        .legend(|(x, y)| Circle::new((x + 10, y), 3, BLUE.filled()));
        if let Some(b) = r.baseline.filter(|b| b.f0_hz > 0.0) {
            let y = f64::from(b.f0_hz);
            hline(
                &mut c,
                y,
                t_max,
                baseline_style,
                format!("caller baseline {y:.0} Hz"),
            )?;
        }
        if let Some(h) = handoff_s {
            vline(&mut c, h, (50.0, f0_max), handoff_style, None)?;
        }
        legend(&mut c)?;
    }
    // Energy
    {
        let mut c = panel(
            &panels[1],
            "Caller energy",
            -80.0..0.0,
            "energy (dBFS)",
            t_max,
        )?;
        line(&mut c, &speech_energy, GREEN.into(), "energy")?;
        if let Some(b) = r.baseline {
            let y = f64::from(b.energy_db);
            hline(
                &mut c,
                y,
                t_max,
                baseline_style,
                format!("caller baseline {y:.1} dBFS"),
            )?;
        }
        if let Some(h) = handoff_s {
            vline(&mut c, h, (-80.0, 0.0), handoff_style, None)?;
        }
        legend(&mut c)?;
    }
    // Rate
    {
        let mut c = panel(
            &panels[2],
            "Caller speaking rate",
            0.0..rate_max,
            "syllables/s",
            t_max,
        )?;
        line(&mut c, &rate, MAGENTA.into(), "speaking rate")?;
        if let Some(b) = r.baseline.filter(|b| b.rate_sps > 0.0) {
            let y = f64::from(b.rate_sps);
            hline(
                &mut c,
                y,
                t_max,
                baseline_style,
                format!("caller baseline {y:.1} syl/s"),
            )?;
        }
        legend(&mut c)?;
    }
    // Tone, threshold, signals, handoff
    {
        let caption = "Caller tone score, signals and handoff";
        let mut c = panel(&panels[3], caption, 0.0..1.05, "tone score", t_max)?;
        line(
            &mut c,
            &tone,
            ShapeStyle::from(&BLACK).stroke_width(2),
            "tone score",
        )?;
        let th = ShapeStyle::from(&RGBColor(255, 140, 0)).stroke_width(2);
        hline(
            &mut c,
            tone_threshold,
            t_max,
            th,
            format!("threshold {tone_threshold:.2}"),
        )?;
        c.draw_series(signals.iter().map(|(x, name)| {
            EmptyElement::at((*x, 0.95))
                + TriangleMarker::new((0, 0), 6, RGBColor(0, 120, 200).filled())
                + Text::new(name.clone(), (4, 6), ("sans-serif", 12).into_font())
        }))
        .map_err(err)?
        .label("signal crossing")
        .legend(|(x, y)| TriangleMarker::new((x + 10, y), 5, RGBColor(0, 120, 200).filled()));
        if let Some(h) = handoff_s {
            let label = format!("handoff at {h:.1} s");
            vline(&mut c, h, (0.0, 1.05), handoff_style, Some(label))?;
        }
        legend(&mut c)?;
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

/// A labelled line series.
fn line(
    c: &mut Chart,
    points: &[(f64, f64)],
    style: ShapeStyle,
    label: &str,
) -> Result<(), PlotError> {
    c.draw_series(LineSeries::new(points.iter().copied(), style))
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    Ok(())
}

/// A labelled horizontal reference line (baseline, threshold) across the call.
fn hline(
    c: &mut Chart,
    y: f64,
    t_max: f64,
    style: ShapeStyle,
    label: String,
) -> Result<(), PlotError> {
    line(c, &[(0.0, y), (t_max, y)], style, &label)
}

/// A vertical marker (the handoff), labelled in the legend when `label` is given.
fn vline(
    c: &mut Chart,
    x: f64,
    (y0, y1): (f64, f64),
    style: ShapeStyle,
    label: Option<String>,
) -> Result<(), PlotError> {
    match label {
        Some(l) => line(c, &[(x, y0), (x, y1)], style, &l),
        None => c
            .draw_series(LineSeries::new([(x, y0), (x, y1)], style))
            .map(|_| ())
            .map_err(err),
    }
}

fn legend<'a, 'b: 'a>(c: &mut Chart<'a, 'b>) -> Result<(), PlotError> {
    c.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(err)
}
