//! The contract's per-frame feature CSV (`warmline features`).

use super::{DspConfig, analyze};
use std::io::{self, Write};

/// The contract's feature CSV for a recording: `t_ms,vad,voiced,f0_hz,energy_db,rate_sps`
/// first, then the other absolute and the relative features. `f0_hz` is empty when unvoiced;
/// booleans are 0/1.
pub fn write_features_csv<W: Write>(
    samples: &[i16],
    sample_rate_hz: u32,
    cfg: &DspConfig,
    mut out: W,
) -> io::Result<()> {
    let frames = analyze(samples, sample_rate_hz, cfg)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    writeln!(
        out,
        "t_ms,vad,voiced,f0_hz,energy_db,rate_sps,speech,loudness_db,tilt_db,f0_range_st,\
         f0_var_st,pause_ratio,nucleus,baseline_ready,rel_f0_st,rel_energy_db,rel_loudness_db,\
         rel_tilt_db,rel_rate_ratio,cep1,cep2,cep3,cep4,rel_cep1,rel_cep2,rel_cep3,rel_cep4"
    )?;
    for f in &frames {
        write!(
            out,
            "{},{},{},",
            f.t_ms,
            u8::from(f.vad),
            u8::from(f.voiced)
        )?;
        if f.voiced {
            write!(out, "{:.1}", f.f0_hz)?;
        }
        write!(
            out,
            ",{:.2},{:.2},{},{:.2},{:.2},{:.2},{:.2},{:.3},{},{},{:.2},{:.2},{:.2},{:.2},{:.3}",
            f.energy_db,
            f.rate_sps,
            u8::from(f.speech),
            f.loudness_db,
            f.tilt_db,
            f.f0_range_st,
            f.f0_var_st,
            f.pause_ratio,
            u8::from(f.nucleus),
            u8::from(f.rel.baseline_ready),
            f.rel.f0_st,
            f.rel.energy_db,
            f.rel.loudness_db,
            f.rel.tilt_db,
            f.rel.rate_ratio,
        )?;
        for c in f.cepstrum.iter().chain(&f.rel.cepstrum) {
            write!(out, ",{c:.2}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}
