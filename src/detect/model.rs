//! The tone model file: what `warmline tune` writes and the detector reads — the logistic
//! over window features ([`ToneModel`], [`PriorModel`]), its validation, its JSON
//! (de)serialisation and loading from disk, and its folding into one dot product per hop
//! ([`Linear`]). The scorer that feeds it lives in [`super::tone`].

use super::tone::{FEATURE_NAMES, N_FEATURES, PRIOR_FEATURES};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The bundled default model.
pub const DEFAULT_MODEL_JSON: &str = include_str!("../../models/default.json");

/// The model file format version this build reads and writes.
pub const MODEL_VERSION: u32 = 2;

/// Default of [`ToneModel::max_age_ms`].
const DEFAULT_MAX_AGE_MS: u32 = 6000;

fn default_max_age_ms() -> u32 {
    DEFAULT_MAX_AGE_MS
}

/// How far a feature may sit from the model's training mean, in training standard deviations,
/// before it stops counting more. In the training clips and the shared calls under 0.2 % of
/// windows reach 8; a voice far outside what the model was fitted on (a synthetic or heavily
/// processed line whose baseline barely moved reads 50 and more on the cepstral spreads) would
/// otherwise decide the score by linear extrapolation alone.
const MAX_Z: f64 = 8.0;

/// A model file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file could not be read.
    #[error("cannot read model {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid model.
    #[error("invalid model {path}: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

/// The tone score before the caller's baseline is ready (issue #18: a caller angry from the
/// first word): a logistic over [`PRIOR_FEATURES`] only, fitted and calibrated by `tune` on the
/// training clips heard without any baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorModel {
    /// Feature names, a subset of [`PRIOR_FEATURES`].
    pub features: Vec<String>,
    /// Per-feature mean used for standardising.
    pub means: Vec<f32>,
    /// Per-feature standard deviation used for standardising (> 0).
    pub stds: Vec<f32>,
    /// Logistic weights on the standardised features (calibrated).
    pub weights: Vec<f32>,
    /// Logistic bias (calibrated).
    pub bias: f32,
}

impl PriorModel {
    /// The prior as one weight per feature of [`FEATURE_NAMES`].
    pub fn linear(&self) -> Linear {
        fold_linear(
            &self.features,
            &self.weights,
            &self.means,
            &self.stds,
            self.bias,
        )
    }

    fn validate(&self) -> Result<(), String> {
        check_columns(
            &self.features,
            &self.means,
            &self.stds,
            &self.weights,
            self.bias,
        )
        .map_err(|e| format!("prior: {e}"))?;
        if let Some(f) = self
            .features
            .iter()
            .find(|f| !PRIOR_FEATURES.contains(&f.as_str()))
        {
            return Err(format!(
                "prior: feature {f:?} needs a baseline (prior features: {})",
                PRIOR_FEATURES.join(", ")
            ));
        }
        Ok(())
    }
}

/// Checks a logistic's columns: names known and distinct, one finite value per name, stds > 0.
fn check_columns(
    features: &[String],
    means: &[f32],
    stds: &[f32],
    weights: &[f32],
    bias: f32,
) -> Result<(), String> {
    let n = features.len();
    if n == 0 {
        return Err("no features".into());
    }
    for (what, len) in [
        ("means", means.len()),
        ("stds", stds.len()),
        ("weights", weights.len()),
    ] {
        if len != n {
            return Err(format!("{what} has {len} values for {n} features"));
        }
    }
    for (i, name) in features.iter().enumerate() {
        if feature_index(name).is_none() {
            return Err(format!(
                "unknown feature {name:?} (known: {})",
                FEATURE_NAMES.join(", ")
            ));
        }
        if features[..i].contains(name) {
            return Err(format!("feature {name:?} listed twice"));
        }
    }
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    if !finite(means) || !finite(weights) || !bias.is_finite() {
        return Err("non-finite mean, weight or bias".into());
    }
    if stds.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err("every std must be finite and > 0".into());
    }
    Ok(())
}

/// A standardised logistic folded into raw-unit weights over [`FEATURE_NAMES`], each feature
/// bounded at [`MAX_Z`] training SDs from its mean.
fn fold_linear(
    features: &[String],
    weights_in: &[f32],
    means: &[f32],
    stds: &[f32],
    bias: f32,
) -> Linear {
    let mut weights = [0.0f32; N_FEATURES];
    let mut lo = [f32::NEG_INFINITY; N_FEATURES];
    let mut hi = [f32::INFINITY; N_FEATURES];
    let mut offset = f64::from(bias);
    for (i, name) in features.iter().enumerate() {
        if let (Some(k), Some(w), Some(m), Some(s)) = (
            feature_index(name),
            weights_in.get(i),
            means.get(i),
            stds.get(i),
        ) {
            let a = f64::from(*w) / f64::from(*s);
            weights[k] += a as f32;
            offset -= a * f64::from(*m);
            let (m, s) = (f64::from(*m), f64::from(*s));
            lo[k] = lo[k].max((m - MAX_Z * s) as f32);
            hi[k] = hi[k].min((m + MAX_Z * s) as f32);
        }
    }
    Linear {
        weights,
        offset: offset as f32,
        lo,
        hi,
    }
}

/// How the model's operating point was chosen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// The rule, in words (e.g. "highest TPR with FPR <= 0.05").
    pub rule: String,
    /// Out-of-fold true-positive rate at the threshold.
    pub tpr: f64,
    /// Out-of-fold false-positive rate at the threshold.
    pub fpr: f64,
}

/// Where a model came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Provenance {
    /// The command that produced it.
    pub command: String,
    /// The data it was trained on.
    pub data: String,
    /// Speaker-disjoint folds used for the out-of-fold figures.
    pub folds: usize,
    /// Out-of-fold AUCs, by evaluation name.
    pub auc: std::collections::BTreeMap<String, f64>,
    /// Free-form notes (channel, baseline priming, caveats).
    pub notes: Vec<String>,
}

/// A tone model: logistic regression over standardised window features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToneModel {
    /// Format version ([`MODEL_VERSION`]).
    pub version: u32,
    /// Feature names, a subset of [`FEATURE_NAMES`] in any order.
    pub features: Vec<String>,
    /// Per-feature mean used for standardising.
    pub means: Vec<f32>,
    /// Per-feature standard deviation used for standardising (> 0).
    pub stds: Vec<f32>,
    /// Logistic weights on the standardised features.
    pub weights: Vec<f32>,
    /// Logistic bias.
    pub bias: f32,
    /// Score at or above which the tone signal fires.
    pub threshold: f32,
    /// Speech the window's features are taken over, ms (the caller's most recent speech).
    pub window_ms: u32,
    /// Media time after which a frame leaves the window even if little speech followed it, ms.
    #[serde(default = "default_max_age_ms")]
    pub max_age_ms: u32,
    /// Speech (with a ready baseline) the window must hold before it is scored, ms.
    pub min_speech_ms: u32,
    /// Recommended time the score must stay at or above the threshold, ms.
    pub sustain_ms: u32,
    /// How the threshold was chosen.
    #[serde(default)]
    pub operating_point: OperatingPoint,
    /// How the model was produced.
    #[serde(default)]
    pub provenance: Provenance,
    /// The score before the caller's baseline is ready (none: 0 until it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<PriorModel>,
}

impl Default for ToneModel {
    fn default() -> Self {
        Self::bundled()
    }
}

impl ToneModel {
    /// The bundled default.
    pub fn bundled() -> Self {
        // invariant: the bundled file is checked by `bundled_model_is_valid`; the fallback (a
        // model that never fires) only guards against a broken build.
        Self::from_json(DEFAULT_MODEL_JSON, "models/default.json").unwrap_or_else(|_| ToneModel {
            version: MODEL_VERSION,
            features: vec![FEATURE_NAMES[3].to_owned()],
            means: vec![0.0],
            stds: vec![1.0],
            weights: vec![0.0],
            bias: -20.0,
            threshold: 0.5,
            window_ms: 2000,
            max_age_ms: DEFAULT_MAX_AGE_MS,
            min_speech_ms: 500,
            sustain_ms: 500,
            operating_point: OperatingPoint::default(),
            provenance: Provenance::default(),
            prior: None,
        })
    }

    /// Loads a model file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses and validates a model; `origin` names the source in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, ModelError> {
        let model: ToneModel = serde_json::from_str(text).map_err(|e| ModelError::Invalid {
            path: origin.to_owned(),
            detail: e.to_string(),
        })?;
        model.validate().map_err(|detail| ModelError::Invalid {
            path: origin.to_owned(),
            detail,
        })?;
        Ok(model)
    }

    /// Checks the model's internal consistency; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != MODEL_VERSION {
            return Err(format!(
                "version {} (this build reads version {MODEL_VERSION})",
                self.version
            ));
        }
        check_columns(
            &self.features,
            &self.means,
            &self.stds,
            &self.weights,
            self.bias,
        )?;
        if let Some(prior) = &self.prior {
            prior.validate()?;
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!("threshold {} outside 0..=1", self.threshold));
        }
        if !(200..=10_000).contains(&self.window_ms) {
            return Err(format!("window_ms {} outside 200..=10000", self.window_ms));
        }
        if self.max_age_ms < self.window_ms || self.max_age_ms > 60_000 {
            return Err(format!(
                "max_age_ms {} outside window_ms..=60000",
                self.max_age_ms
            ));
        }
        if self.min_speech_ms > self.window_ms {
            return Err(format!(
                "min_speech_ms {} exceeds window_ms {}",
                self.min_speech_ms, self.window_ms
            ));
        }
        Ok(())
    }

    /// The model's score for a full feature vector (in [`FEATURE_NAMES`] order), 0..1.
    pub fn score(&self, x: &[f32; N_FEATURES]) -> f32 {
        self.linear().score(x)
    }

    /// The model folded into one weight per feature of [`FEATURE_NAMES`] and an offset, so
    /// scoring a window is a single dot product.
    pub fn linear(&self) -> Linear {
        fold_linear(
            &self.features,
            &self.weights,
            &self.means,
            &self.stds,
            self.bias,
        )
    }
}

/// A model as `sigmoid(a·x + c)` over the full feature vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Linear {
    /// Per-feature weight in raw units (0 for features the model does not use).
    pub weights: [f32; N_FEATURES],
    /// Offset.
    pub offset: f32,
    /// Lowest value of each feature that counts ([`MAX_Z`] training SDs below the mean).
    pub lo: [f32; N_FEATURES],
    /// Highest value of each feature that counts.
    pub hi: [f32; N_FEATURES],
}

impl Linear {
    /// The score of a feature vector, 0..1.
    pub fn score(&self, x: &[f32; N_FEATURES]) -> f32 {
        let dot: f32 = x
            .iter()
            .zip(&self.weights)
            .zip(self.lo.iter().zip(&self.hi))
            // max/min rather than clamp: never panics, whatever bounds a model produces.
            .map(|((v, w), (lo, hi))| w * v.max(*lo).min(*hi))
            .sum();
        sigmoid(self.offset + dot)
    }
}

/// Position of a feature in [`FEATURE_NAMES`].
pub fn feature_index(name: &str) -> Option<usize> {
    FEATURE_NAMES.iter().position(|n| *n == name)
}

/// The logistic function, safe for large |x|.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A hand-made model: louder, higher and tenser than baseline scores high.
    pub(crate) fn toy_model() -> ToneModel {
        ToneModel {
            version: MODEL_VERSION,
            features: vec![
                "f0_rel_st".into(),
                "energy_rel_db".into(),
                "tilt_rel_db".into(),
            ],
            means: vec![0.0, 0.0, 0.0],
            stds: vec![2.0, 3.0, 2.0],
            weights: vec![1.5, 1.5, 1.0],
            bias: -4.0,
            threshold: 0.5,
            window_ms: 3000,
            max_age_ms: 6000,
            min_speech_ms: 500,
            sustain_ms: 1000,
            operating_point: OperatingPoint::default(),
            provenance: Provenance::default(),
            prior: None,
        }
    }

    #[test]
    fn features_far_outside_the_training_data_stop_counting_at_eight_sds() {
        // Toy model: tilt has mean 0 and SD 2, so 8 SDs is 16 dB.
        let lin = toy_model().linear();
        let tilt = feature_index("tilt_rel_db").unwrap();
        let at = |v: f32| {
            let mut x = [0.0f32; N_FEATURES];
            x[tilt] = v;
            lin.score(&x)
        };
        assert!(at(4.0) > at(0.0), "in range the feature counts");
        assert!(at(16.0) > at(12.0));
        assert_eq!(at(16.0), at(500.0), "beyond 8 SDs nothing more is added");
        assert_eq!(at(-16.0), at(-500.0));
        // Features the model does not use are not bounded (their weight is 0 anyway).
        let unused = feature_index("mfcc12_spread").unwrap();
        assert_eq!(lin.lo[unused], f32::NEG_INFINITY);
    }

    #[test]
    fn bundled_model_is_valid() {
        let m = ToneModel::from_json(DEFAULT_MODEL_JSON, "models/default.json").unwrap();
        assert!(m.threshold > 0.0 && m.threshold < 1.0);
        assert!(m.window_ms <= 3000);
        assert_eq!(ToneModel::bundled(), m);
    }

    #[test]
    fn model_json_round_trips() {
        let mut m = toy_model();
        m.provenance.auc.insert("angry_vs_rest".into(), 0.95);
        m.provenance.command = "warmline tune --labels x.csv".into();
        let text = serde_json::to_string_pretty(&m).unwrap();
        assert_eq!(ToneModel::from_json(&text, "x").unwrap(), m);
    }

    #[test]
    fn bad_model_files_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.json");
        std::fs::write(&path, "{\"version\": 1").unwrap();
        let e = ToneModel::load(&path).unwrap_err().to_string();
        assert!(e.contains("broken.json"), "{e}");

        let mut m = toy_model();
        m.weights.pop();
        std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
        let e = ToneModel::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("broken.json") && e.contains("weights has 2 values"),
            "{e}"
        );

        let mut m = toy_model();
        m.features[1] = "shouting".into();
        std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
        let e = ToneModel::load(&path).unwrap_err().to_string();
        assert!(e.contains("unknown feature \"shouting\""), "{e}");

        let e = ToneModel::load(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
    }
}
