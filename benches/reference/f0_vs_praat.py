#!/usr/bin/env python3
"""F0 on emotional speech: warmline against Praat, frame by frame.

The shared pitch sets (synthetic, FDA, PTDB-TUG) are read speech below 450 Hz; raised voices
(fear, shouting) go higher. This puts every RAVDESS clip of `emotion/` through the telephone
channel (8 kHz, 4th-order Butterworth 300-3400 Hz, mu-law), runs `warmline features` on it and
compares each voiced frame's F0 with Praat's autocorrelation pitch (floor 60 Hz, ceiling
900 Hz) at the frame's centre. Reports, per emotion and sex, the share of frames within one
semitone and the octave errors either way.

Not part of the build or the tests. Needs: pip install praat-parselmouth scipy pandas

    cargo build --release
    python3 benches/reference/f0_vs_praat.py ../shared/data target/release/warmline
"""

import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from channel import telephone


def main():
    import parselmouth
    from scipy.io import wavfile

    data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    binary = sys.argv[2] if len(sys.argv) > 2 else "target/release/warmline"
    index = pd.read_csv(data / "emotion" / "index.csv")
    index = index[index.corpus == "ravdess"].reset_index(drop=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "clip.wav"
        for n, r in index.iterrows():
            rate_hz, x = wavfile.read(data / r.path)
            x = x.astype(np.float64) / 32768.0
            if x.ndim > 1:
                x = x.mean(axis=1)
            y = telephone(x, rate_hz)
            wavfile.write(wav, 8000, (y * 32767).astype(np.int16))
            out = subprocess.run([binary, "features", str(wav)], capture_output=True, text=True, check=True)
            ours = pd.read_csv(io.StringIO(out.stdout))
            ours = ours[(ours.voiced == 1) & (ours.f0_hz > 0)]
            praat = parselmouth.Sound(y, 8000).to_pitch_ac(time_step=0.005, pitch_floor=60, pitch_ceiling=900)
            for t_ms, f0 in zip(ours.t_ms, ours.f0_hz):
                # A frame's F0 comes from the window centred on its hop (hop start + 10 ms).
                ref = praat.get_value_at_time((t_ms + 10) / 1000)
                if ref == ref and ref > 0:
                    rows.append((r.emotion, r.sex, f0, ref))
            print(f"\r{n + 1}/{len(index)} clips", end="", file=sys.stderr)
    print(file=sys.stderr)
    d = pd.DataFrame(rows, columns=["emotion", "sex", "ours", "praat"])
    d["st"] = 12 * np.log2(d.ours / d.praat)
    print("| emotion | sex | frames | within 1 st | octave below | octave above | Praat > 450 Hz |")
    print("|---|---|---|---|---|---|---|")
    for (e, s), g in list(d.groupby(["emotion", "sex"])) + [(("all", ""), d)]:
        st = g.st
        print(f"| {e} | {s} | {len(g)} | {np.mean(abs(st) < 1):.3f} | {np.mean(abs(st + 12) < 2):.3f} "
              f"| {np.mean(abs(st - 12) < 2):.3f} | {np.mean(g.praat > 450):.3f} |")


if __name__ == "__main__":
    main()
