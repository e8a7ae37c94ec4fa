//! The ROC curve as an SVG (plotters): curve, chance diagonal, AUC in the legend and the
//! operating point marked.

use super::roc::RocPoint;
use plotters::prelude::*;

/// Renders ROC curves to an SVG string; `curves` are (legend label, points), `op` the operating
/// point to mark on the first curve.
pub fn roc_svg(
    title: &str,
    curves: &[(String, Vec<RocPoint>)],
    op: Option<RocPoint>,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 600)).into_drawing_area();
        draw(&root, title, curves, op).map_err(|e| format!("drawing ROC: {e}"))?;
        root.present().map_err(|e| format!("drawing ROC: {e}"))?;
    }
    Ok(svg)
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    curves: &[(String, Vec<RocPoint>)],
    op: Option<RocPoint>,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("false-positive rate")
        .y_desc("true-positive rate")
        .x_labels(11)
        .y_labels(11)
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
        .map_err(|e| err(&e))?
        .label("chance")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.3)));
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN];
    for (i, (label, points)) in curves.iter().enumerate() {
        let color = palette[i % palette.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.fpr, p.tpr)),
                color.stroke_width(2),
            ))
            .map_err(|e| err(&e))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    if let Some(p) = op {
        chart
            .draw_series(std::iter::once(Circle::new(
                (p.fpr, p.tpr),
                6,
                BLACK.filled(),
            )))
            .map_err(|e| err(&e))?
            .label(format!(
                "operating point: threshold {:.3}, TPR {:.3}, FPR {:.3}",
                p.threshold, p.tpr, p.fpr
            ))
            .legend(|(x, y)| Circle::new((x + 10, y), 5, BLACK.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    Ok(())
}

/// Renders a reliability diagram (mean predicted probability against the observed share of
/// positives, per bin; the diagonal is perfect calibration) to an SVG string.
pub fn reliability_svg(
    title: &str,
    bins: &[super::select::ReliabilityBin],
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 600)).into_drawing_area();
        draw_reliability(&root, title, bins).map_err(|e| format!("drawing reliability: {e}"))?;
        root.present()
            .map_err(|e| format!("drawing reliability: {e}"))?;
    }
    Ok(svg)
}

fn draw_reliability(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    bins: &[super::select::ReliabilityBin],
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("predicted probability (clip score)")
        .y_desc("observed share of angry clips")
        .x_labels(11)
        .y_labels(11)
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3)))
        .map_err(|e| err(&e))?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.3)));
    chart
        .draw_series(LineSeries::new(
            bins.iter().map(|b| (b.predicted, b.observed)),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label("out-of-fold clips (dot area ~ clips per bin)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    let most = bins.iter().map(|b| b.n).max().unwrap_or(1).max(1) as f64;
    chart
        .draw_series(bins.iter().map(|b| {
            let r = (3.0 + 9.0 * (b.n as f64 / most).sqrt()) as i32;
            Circle::new((b.predicted, b.observed), r, BLUE.filled())
        }))
        .map_err(|e| err(&e))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::roc::{operating_point, roc};

    #[test]
    fn svg_parses_and_holds_the_curve_auc_and_operating_point() {
        let scores = [0.9, 0.8, 0.6, 0.55, 0.4, 0.3, 0.2, 0.1];
        let labels = [true, true, false, true, false, true, false, false];
        let curve = roc(&scores, &labels);
        let op = operating_point(&curve, 0.25);
        let svg = roc_svg(
            "anger vs rest",
            &[("RAVDESS (AUC 0.812)".into(), curve.clone())],
            op,
        )
        .unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("valid XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        assert!(texts.iter().any(|t| t.contains("AUC 0.812")), "{texts:?}");
        assert!(texts.iter().any(|t| t.contains("operating point")));
        assert!(texts.iter().any(|t| t.contains("false-positive rate")));
        // The ROC series: a polyline with one vertex per curve point.
        let longest = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter_map(|n| n.attribute("points"))
            .map(|p| p.split_whitespace().count())
            .max()
            .unwrap_or(0);
        assert_eq!(longest, curve.len());
        assert!(doc.descendants().any(|n| n.has_tag_name("circle")));
    }
}
