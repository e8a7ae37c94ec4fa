"""The telephone channel the reference scripts apply, as `warmline tune` does: resample to
8 kHz, 4th-order Butterworth band-pass 300-3400 Hz, G.711 mu-law round trip."""

import numpy as np


def telephone(x, rate_hz):
    from scipy.signal import butter, resample_poly, sosfilt

    y = resample_poly(x, 8000, rate_hz)
    y = sosfilt(butter(4, [300, 3400], btype="band", fs=8000, output="sos"), y)
    y = np.clip(y, -1.0, 1.0)
    mu = 255.0
    c = np.round(np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu) * 127) / 127
    return np.sign(c) * ((1 + mu) ** np.abs(c) - 1) / mu
