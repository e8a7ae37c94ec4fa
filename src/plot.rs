//! SVG plots of a replayed call: caller F0 and energy against the caller's baseline, speaking
//! rate, and the tone score with its threshold, signal crossings and the handoff marker.

use crate::event::EventKind;
use crate::replay::CallReport;
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
        let mut c = ChartBuilder::on(&panels[0])
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .caption("Caller F0", ("sans-serif", 16))
            .build_cartesian_2d(0.0..t_max, 50.0..f0_max)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("time (s)")
            .y_desc("F0 (Hz)")
            .draw()
            .map_err(err)?;
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
            c.draw_series(LineSeries::new([(0.0, y), (t_max, y)], baseline_style))
                .map_err(err)?
                .label(format!("caller baseline {y:.0} Hz"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], baseline_style));
        }
        if let Some(h) = handoff_s {
            c.draw_series(LineSeries::new([(h, 50.0), (h, f0_max)], handoff_style))
                .map_err(err)?;
        }
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(err)?;
    }
    // Energy
    {
        let mut c = ChartBuilder::on(&panels[1])
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .caption("Caller energy", ("sans-serif", 16))
            .build_cartesian_2d(0.0..t_max, -80.0..0.0)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("time (s)")
            .y_desc("energy (dBFS)")
            .draw()
            .map_err(err)?;
        c.draw_series(LineSeries::new(speech_energy.iter().copied(), &GREEN))
            .map_err(err)?
            .label("energy")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], GREEN));
        if let Some(b) = r.baseline {
            let y = f64::from(b.energy_db);
            c.draw_series(LineSeries::new([(0.0, y), (t_max, y)], baseline_style))
                .map_err(err)?
                .label(format!("caller baseline {y:.1} dBFS"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], baseline_style));
        }
        if let Some(h) = handoff_s {
            c.draw_series(LineSeries::new([(h, -80.0), (h, 0.0)], handoff_style))
                .map_err(err)?;
        }
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(err)?;
    }
    // Rate
    {
        let mut c = ChartBuilder::on(&panels[2])
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .caption("Caller speaking rate", ("sans-serif", 16))
            .build_cartesian_2d(0.0..t_max, 0.0..rate_max)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("time (s)")
            .y_desc("syllables/s")
            .draw()
            .map_err(err)?;
        c.draw_series(LineSeries::new(rate.iter().copied(), &MAGENTA))
            .map_err(err)?
            .label("speaking rate")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], MAGENTA));
        if let Some(b) = r.baseline.filter(|b| b.rate_sps > 0.0) {
            let y = f64::from(b.rate_sps);
            c.draw_series(LineSeries::new([(0.0, y), (t_max, y)], baseline_style))
                .map_err(err)?
                .label(format!("caller baseline {y:.1} syl/s"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], baseline_style));
        }
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(err)?;
    }
    // Tone, threshold, signals, handoff
    {
        let mut c = ChartBuilder::on(&panels[3])
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .caption("Caller tone score, signals and handoff", ("sans-serif", 16))
            .build_cartesian_2d(0.0..t_max, 0.0..1.05)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("time (s)")
            .y_desc("tone score")
            .draw()
            .map_err(err)?;
        c.draw_series(LineSeries::new(
            tone.iter().copied(),
            ShapeStyle::from(&BLACK).stroke_width(2),
        ))
        .map_err(err)?
        .label("tone score")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
        let th = ShapeStyle::from(&RGBColor(255, 140, 0)).stroke_width(2);
        c.draw_series(LineSeries::new(
            [(0.0, tone_threshold), (t_max, tone_threshold)],
            th,
        ))
        .map_err(err)?
        .label(format!("threshold {tone_threshold:.2}"))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], th));
        c.draw_series(signals.iter().map(|(x, name)| {
            EmptyElement::at((*x, 0.95))
                + TriangleMarker::new((0, 0), 6, RGBColor(0, 120, 200).filled())
                + Text::new(name.clone(), (4, 6), ("sans-serif", 12).into_font())
        }))
        .map_err(err)?
        .label("signal crossing")
        .legend(|(x, y)| TriangleMarker::new((x + 10, y), 5, RGBColor(0, 120, 200).filled()));
        if let Some(h) = handoff_s {
            c.draw_series(LineSeries::new([(h, 0.0), (h, 1.05)], handoff_style))
                .map_err(err)?
                .label(format!("handoff at {h:.1} s"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], handoff_style));
        }
        c.configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
