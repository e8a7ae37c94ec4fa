//! Labelled recordings for `warmline tune`: the labels CSV, the shared emotion index, WAV
//! loading and the telephone channel the audio is degraded through.
//!
//! A file that cannot be used at all (missing, no header, no `path`/`label` column) is an error;
//! a bad row (empty or unknown label, missing or corrupt or empty WAV) is reported with its file
//! and line and skipped, and the remaining rows are still used.

use super::TuneError;
use crate::codec::Codec;
use std::path::{Path, PathBuf};

/// One labelled recording.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    /// The CSV (or index) it came from.
    pub source: PathBuf,
    /// 1-based line in that file.
    pub line: usize,
    /// The recording, resolved against the CSV's folder.
    pub path: PathBuf,
    /// The label as written (lower-cased), e.g. `angry`, `neutral`, `1`.
    pub label: String,
    /// Whether the label is the positive class.
    pub positive: bool,
    /// Speaker id, when the CSV has one.
    pub speaker: Option<String>,
    /// Explicit baseline material flag (`baseline` column), when the CSV has one.
    pub baseline: Option<bool>,
    /// Corpus (`corpus` column), for leave-corpus-out figures.
    pub corpus: Option<String>,
    /// Acted intensity (`intensity` column, e.g. RAVDESS `normal`/`strong`).
    pub intensity: Option<String>,
}

impl LabelRow {
    /// `file:line`, for messages.
    pub fn at(&self) -> String {
        format!("{}:{}", self.source.display(), self.line)
    }

    /// Whether this row is calm reference material for its speaker: the `baseline` column when
    /// present, else a `neutral`, `calm` or `0` label.
    pub fn is_baseline_material(&self) -> bool {
        self.baseline
            .unwrap_or(!self.positive && matches!(self.label.as_str(), "neutral" | "calm" | "0"))
    }
}

/// A row that was skipped, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RowProblem {
    /// `file:line`.
    pub at: String,
    /// What is wrong.
    pub detail: String,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.detail)
    }
}

/// Positive labels (case-insensitive).
const POSITIVE: [&str; 4] = ["1", "angry", "anger", "frustrated"];

/// Reads a label: `Ok(positive)`, or why it is unusable. Anything word-like that is not a
/// positive label is a negative (`0`, `neutral`, `happy`, …); empty labels and numbers other
/// than 0/1 are refused, since they usually mean a scores column was given by mistake.
pub fn parse_label(raw: &str) -> Result<(String, bool), String> {
    let label = raw.trim().to_ascii_lowercase();
    if label.is_empty() {
        return Err("empty label".into());
    }
    if POSITIVE.contains(&label.as_str()) {
        return Ok((label, true));
    }
    if label == "0" {
        return Ok((label, false));
    }
    if label
        .chars()
        .all(|c| c.is_ascii_alphabetic() || c == '_' || c == '-' || c == ' ')
    {
        return Ok((label, false));
    }
    Err(format!(
        "unknown label {raw:?} (use 1/0, angry/frustrated for positives, or a word such as neutral)"
    ))
}

/// Splits one CSV line (RFC 4180 quoting; no embedded newlines).
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// A parsed CSV: header names and rows with their 1-based line numbers.
struct Csv {
    header: Vec<String>,
    rows: Vec<(usize, Vec<String>)>,
}

fn read_csv(path: &Path) -> Result<Csv, TuneError> {
    let text = std::fs::read_to_string(path).map_err(|source| TuneError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((_, head)) = lines.next() else {
        return Err(TuneError::Labels {
            path: path.to_path_buf(),
            detail: "empty file (expected a header with path,label)".into(),
        });
    };
    let header = split_csv_line(head)
        .into_iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let rows = lines.map(|(n, l)| (n, split_csv_line(l))).collect();
    Ok(Csv { header, rows })
}

fn column(csv: &Csv, path: &Path, name: &str) -> Result<usize, TuneError> {
    csv.header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| TuneError::Labels {
            path: path.to_path_buf(),
            detail: format!(
                "no {name:?} column in header (found: {})",
                csv.header.join(",")
            ),
        })
}

/// Reads a labels CSV (`path,label[,speaker][,baseline]`); paths are relative to its folder.
pub fn read_labels(path: &Path) -> Result<(Vec<LabelRow>, Vec<RowProblem>), TuneError> {
    let csv = read_csv(path)?;
    let c_path = column(&csv, path, "path")?;
    let c_label = column(&csv, path, "label")?;
    let c_speaker = csv.header.iter().position(|h| h == "speaker");
    let c_baseline = csv.header.iter().position(|h| h == "baseline");
    let c_corpus = csv.header.iter().position(|h| h == "corpus");
    let c_intensity = csv.header.iter().position(|h| h == "intensity");
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (line, fields) in &csv.rows {
        let at = format!("{}:{line}", path.display());
        let get = |c: usize| fields.get(c).map(|s| s.trim()).unwrap_or("");
        let rel = get(c_path);
        if rel.is_empty() {
            problems.push(RowProblem {
                at,
                detail: "empty path".into(),
            });
            continue;
        }
        let (label, positive) = match parse_label(get(c_label)) {
            Ok(l) => l,
            Err(detail) => {
                problems.push(RowProblem { at, detail });
                continue;
            }
        };
        let baseline = match c_baseline.map(get) {
            None | Some("") => None,
            Some("1" | "true" | "yes") => Some(true),
            Some("0" | "false" | "no") => Some(false),
            Some(other) => {
                problems.push(RowProblem {
                    at,
                    detail: format!("baseline must be 1 or 0, not {other:?}"),
                });
                continue;
            }
        };
        rows.push(LabelRow {
            source: path.to_path_buf(),
            line: *line,
            path: base.join(rel),
            label,
            positive,
            speaker: c_speaker
                .map(get)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            baseline,
            corpus: c_corpus
                .map(get)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            intensity: c_intensity
                .map(get)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        });
    }
    Ok((rows, problems))
}

/// Which negatives an emotion-index run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negatives {
    /// Every emotion other than anger.
    All,
    /// Only `neutral` and `calm`.
    NeutralCalm,
}

/// Reads the shared `emotion/index.csv` (`path,corpus,speaker,…,emotion,…`, paths relative to
/// the data root, the index's grandparent) as label rows, optionally for one corpus.
pub fn read_emotion_index(
    path: &Path,
    corpus: Option<&str>,
    negatives: Negatives,
) -> Result<(Vec<LabelRow>, Vec<RowProblem>), TuneError> {
    let csv = read_csv(path)?;
    let c_path = column(&csv, path, "path")?;
    let c_corpus = column(&csv, path, "corpus")?;
    let c_speaker = column(&csv, path, "speaker")?;
    let c_emotion = column(&csv, path, "emotion")?;
    let c_intensity = csv.header.iter().position(|h| h == "intensity");
    let root = path
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (line, fields) in &csv.rows {
        let get = |c: usize| fields.get(c).map(|s| s.trim()).unwrap_or("");
        if corpus.is_some_and(|c| !get(c_corpus).eq_ignore_ascii_case(c)) {
            continue;
        }
        let (label, positive) = match parse_label(get(c_emotion)) {
            Ok(l) => l,
            Err(detail) => {
                problems.push(RowProblem {
                    at: format!("{}:{line}", path.display()),
                    detail,
                });
                continue;
            }
        };
        if negatives == Negatives::NeutralCalm && !positive && label != "neutral" && label != "calm"
        {
            continue;
        }
        rows.push(LabelRow {
            source: path.to_path_buf(),
            line: *line,
            path: root.join(get(c_path)),
            label,
            positive,
            speaker: Some(get(c_speaker).to_owned()).filter(|s| !s.is_empty()),
            baseline: None,
            corpus: Some(get(c_corpus).to_ascii_lowercase()).filter(|s| !s.is_empty()),
            intensity: c_intensity
                .map(get)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        });
    }
    Ok((rows, problems))
}

/// Writes rows as a labels CSV (paths absolute), so a derived run can be repeated with
/// `--labels`.
pub fn write_labels(path: &Path, rows: &[LabelRow]) -> Result<(), TuneError> {
    let mut text = String::from("path,label,speaker\n");
    for r in rows {
        let quote = |s: &str| {
            if s.contains([',', '"']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_owned()
            }
        };
        text.push_str(&format!(
            "{},{},{}\n",
            quote(&r.path.display().to_string()),
            quote(&r.label),
            quote(r.speaker.as_deref().unwrap_or(""))
        ));
    }
    std::fs::write(path, text).map_err(|source| TuneError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Mono 16-bit PCM and its rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples.
    pub samples: Vec<i16>,
    /// Rate, Hz.
    pub sample_rate_hz: u32,
}

impl Audio {
    /// Length, seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate_hz.max(1))
    }
}

/// Reads a WAV through the one WAV reader of the crate ([`crate::replay::read_wav`], which
/// `replay` uses); a stereo file's two channels are averaged.
pub fn read_wav(path: &Path) -> Result<Audio, String> {
    let (rate, mut channels) = crate::replay::read_wav(path).map_err(|e| e.to_string())?;
    let samples = match channels.len() {
        2 => channels[0]
            .iter()
            .zip(&channels[1])
            .map(|(a, b)| ((i32::from(*a) + i32::from(*b)) / 2) as i16)
            .collect(),
        _ => channels.swap_remove(0),
    };
    Ok(Audio {
        samples,
        sample_rate_hz: rate,
    })
}

/// The telephone channel: resample to 8 kHz, band-pass 300–3400 Hz, G.711 mu-law round trip.
pub fn telephone_channel(audio: &Audio) -> Result<Audio, String> {
    let x: Vec<f32> = audio
        .samples
        .iter()
        .map(|s| f32::from(*s) / 32768.0)
        .collect();
    let mut y = resample(&x, audio.sample_rate_hz, 8000)?;
    // 4th-order Butterworth band edges: two high-pass and two low-pass biquads.
    for (kind, f_hz, q) in [
        (Pass::High, 300.0, 0.5412),
        (Pass::High, 300.0, 1.3066),
        (Pass::Low, 3400.0, 0.5412),
        (Pass::Low, 3400.0, 1.3066),
    ] {
        Biquad::new(kind, f_hz, q, 8000.0).run(&mut y);
    }
    let samples = y
        .iter()
        .map(|v| {
            let s = (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
            Codec::Mulaw.round_trip(s)
        })
        .collect();
    Ok(Audio {
        samples,
        sample_rate_hz: 8000,
    })
}

/// Offline resampling of a whole signal (rubato FFT resampler), delay-compensated.
pub fn resample(x: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, String> {
    use rubato::Resampler;
    if from_hz == to_hz {
        return Ok(x.to_vec());
    }
    let chunk = 1024;
    let mut r = rubato::FftFixedIn::<f32>::new(from_hz as usize, to_hz as usize, chunk, 2, 1)
        .map_err(|e| format!("resampler {from_hz}->{to_hz} Hz: {e}"))?;
    let delay = r.output_delay();
    let want = (x.len() as u64 * u64::from(to_hz) / u64::from(from_hz)) as usize;
    let mut out = Vec::with_capacity(want + delay + chunk);
    let mut pos = 0;
    let mut buf = vec![vec![0.0f32; r.output_frames_max()]];
    while out.len() < want + delay {
        let need = r.input_frames_next();
        let mut block = vec![0.0f32; need];
        let take = need.min(x.len().saturating_sub(pos));
        block[..take].copy_from_slice(&x[pos..pos + take]);
        pos += take;
        let (_, n) = r
            .process_into_buffer(&[&block], &mut buf, None)
            .map_err(|e| format!("resampling: {e}"))?;
        out.extend_from_slice(&buf[0][..n]);
    }
    Ok(out[delay..delay + want].to_vec())
}

#[derive(Clone, Copy)]
pub(crate) enum Pass {
    High,
    Low,
}

/// RBJ cookbook biquad, direct form I.
pub(crate) struct Biquad {
    b: [f32; 3],
    a: [f32; 2],
}

impl Biquad {
    pub(crate) fn new(kind: Pass, f_hz: f32, q: f32, rate_hz: f32) -> Self {
        let w = 2.0 * std::f32::consts::PI * f_hz / rate_hz;
        let (sin, cos) = w.sin_cos();
        let alpha = sin / (2.0 * q);
        let a0 = 1.0 + alpha;
        let b = match kind {
            Pass::Low => [(1.0 - cos) / 2.0, 1.0 - cos, (1.0 - cos) / 2.0],
            Pass::High => [(1.0 + cos) / 2.0, -(1.0 + cos), (1.0 + cos) / 2.0],
        };
        Self {
            b: b.map(|v| v / a0),
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
        }
    }

    pub(crate) fn run(&self, x: &mut [f32]) {
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        for v in x.iter_mut() {
            let y =
                self.b[0] * *v + self.b[1] * x1 + self.b[2] * x2 - self.a[0] * y1 - self.a[1] * y2;
            x2 = x1;
            x1 = *v;
            y2 = y1;
            y1 = y;
            *v = y;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_the_contract() {
        assert_eq!(parse_label("1"), Ok(("1".into(), true)));
        assert_eq!(parse_label("Angry"), Ok(("angry".into(), true)));
        assert_eq!(parse_label("frustrated"), Ok(("frustrated".into(), true)));
        assert_eq!(parse_label("0"), Ok(("0".into(), false)));
        assert_eq!(parse_label("happy"), Ok(("happy".into(), false)));
        assert!(parse_label("").is_err());
        assert!(parse_label("0.7").unwrap_err().contains("unknown label"));
    }

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(
            split_csv_line(r#"a,"b,c","d""e",,f"#),
            vec!["a", "b,c", "d\"e", "", "f"]
        );
    }

    #[test]
    fn bad_rows_are_reported_with_file_and_line_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("labels.csv");
        std::fs::write(
            &csv,
            "path,label,speaker\na.wav,angry,s1\nb.wav,,s1\nc.wav,0.3,s2\n\nd.wav,calm,s2\n",
        )
        .unwrap();
        let (rows, problems) = read_labels(&csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].path, dir.path().join("a.wav"));
        assert!(rows[0].positive && !rows[1].positive);
        assert!(rows[1].is_baseline_material());
        assert_eq!(rows[1].line, 6);
        assert_eq!(problems.len(), 2);
        assert!(
            problems[0]
                .to_string()
                .ends_with("labels.csv:3: empty label")
        );
        assert!(problems[1].at.ends_with("labels.csv:4"));

        std::fs::write(&csv, "file,label\n").unwrap();
        let e = read_labels(&csv).unwrap_err().to_string();
        assert!(e.contains("labels.csv") && e.contains("\"path\""), "{e}");
        let e = read_labels(&dir.path().join("nope.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.csv"), "{e}");
    }

    #[test]
    fn wav_problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.wav");
        std::fs::write(&bad, b"RIFF\x10\x00\x00\x00WAVEjunk").unwrap();
        assert!(read_wav(&bad).unwrap_err().contains("bad.wav"));
        let empty = dir.path().join("empty.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        hound::WavWriter::create(&empty, spec)
            .unwrap()
            .finalize()
            .unwrap();
        let e = read_wav(&empty).unwrap_err();
        assert!(e.contains("empty.wav") && e.contains("empty input"), "{e}");
    }

    #[test]
    fn telephone_channel_keeps_speech_band_and_drops_the_rest() {
        let tone = |f: f32| Audio {
            samples: (0..16000)
                .map(|i| {
                    ((i as f32 * 2.0 * std::f32::consts::PI * f / 16000.0).sin() * 10000.0) as i16
                })
                .collect(),
            sample_rate_hz: 16000,
        };
        let rms = |a: &Audio| {
            let s = &a.samples[2000..6000];
            (s.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
        };
        let pass = telephone_channel(&tone(1000.0)).unwrap();
        assert_eq!(pass.sample_rate_hz, 8000);
        assert_eq!(pass.samples.len(), 8000);
        assert!((rms(&pass) / 7071.0 - 1.0).abs() < 0.1, "{}", rms(&pass));
        let low = telephone_channel(&tone(80.0)).unwrap();
        assert!(rms(&low) < 0.1 * 7071.0, "{}", rms(&low));
        let high = telephone_channel(&tone(6000.0)).unwrap();
        assert!(rms(&high) < 0.05 * 7071.0, "{}", rms(&high));
    }
}
