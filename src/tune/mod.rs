//! Offline evaluation and calibration of the tone detector (`warmline tune`).
//!
//! (Being filled in.)
