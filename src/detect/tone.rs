//! The tone score: caller frustration from prosody relative to the caller's own baseline, over
//! a short window, through a model file produced by `warmline tune`.
//!
//! (Interface settled; the model is being filled in.)

use crate::dsp::Frame;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The bundled default model.
pub const DEFAULT_MODEL_JSON: &str = include_str!("../../models/default.json");

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

/// A tone model (logistic over window features).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToneModel {
    /// Format version.
    pub version: u32,
    /// Score above which the tone signal fires.
    pub threshold: f32,
}

impl ToneModel {
    /// The bundled default.
    pub fn bundled() -> Self {
        // invariant: the bundled file is checked by a unit test.
        serde_json::from_str(DEFAULT_MODEL_JSON).unwrap_or(ToneModel {
            version: 1,
            threshold: 0.5,
        })
    }

    /// Loads a model file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| ModelError::Invalid {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
    }
}

/// Scores one track's frames.
#[derive(Debug)]
pub struct ToneScorer {
    model: Arc<ToneModel>,
    score: f32,
}

impl ToneScorer {
    /// A scorer for one track.
    pub fn new(model: Arc<ToneModel>) -> Self {
        Self { model, score: 0.0 }
    }

    /// Feeds one frame; returns the current score, 0..1.
    pub fn push(&mut self, _frame: &Frame) -> f32 {
        self.score
    }

    /// The model's threshold.
    pub fn threshold(&self) -> f32 {
        self.model.threshold
    }
}
