#!/usr/bin/env python3
"""Re-measures the README's reference figure (openSMILE eGeMAPSv02 functionals + logistic
regression, anger vs other emotions on RAVDESS) under warmline's own protocol, so BENCHMARKS.md
can put the two side by side on equal terms.

Same clips as `warmline tune --emotion-index ... --corpus ravdess`, the same telephone channel
(resample to 8 kHz, 4th-order Butterworth 300-3400 Hz, G.711 mu-law round trip), the same
speaker-disjoint folds (speakers sorted by name, dealt round-robin into 6 folds) and also
leave-one-speaker-out. Whole clips are scored offline (the reference's setting); warmline scores
2 s streaming windows.

Not part of the build or the tests. Needs: pip install opensmile scipy scikit-learn pandas

    python3 benches/reference/egemaps_lr.py ../shared/data
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from channel import telephone


def features(data):
    import opensmile
    from scipy.io import wavfile

    index = pd.read_csv(data / "emotion" / "index.csv")
    index = index[index.corpus == "ravdess"].reset_index(drop=True)
    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )
    rows = []
    for n, row in index.iterrows():
        rate_hz, x = wavfile.read(data / row.path)
        x = x.astype(np.float64) / 32768.0
        if x.ndim > 1:
            x = x.mean(axis=1)
        f = smile.process_signal(telephone(x, rate_hz).astype(np.float32), 8000)
        rows.append(f.iloc[0].to_numpy())
        print(f"\r{n + 1}/{len(index)} clips", end="", file=sys.stderr)
    print(file=sys.stderr)
    cols = smile.feature_names
    table = pd.DataFrame(rows, columns=cols)
    table["speaker"] = index.speaker
    table["emotion"] = index.emotion
    return table, cols


def evaluate(table, cols, X, folds, c):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    y = (table.emotion == "angry").to_numpy()
    s = np.zeros(len(table))
    for f in sorted(set(folds)):
        tr = folds != f
        sc = StandardScaler().fit(X[tr])
        m = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
        m.fit(sc.transform(X[tr]), y[tr])
        s[~tr] = m.decision_function(sc.transform(X[~tr]))
    by = {}
    for label in sorted(set(table.emotion) - {"angry"}):
        k = table.emotion.isin(["angry", label]).to_numpy()
        by[label] = roc_auc_score(y[k], s[k])
    k = table.emotion.isin(["angry", "neutral", "calm"]).to_numpy()
    return roc_auc_score(y, s), roc_auc_score(y[k], s[k]), by


def main():
    data = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    if not (data / "emotion" / "index.csv").exists():
        sys.exit(f"{data}/emotion/index.csv not found: pass the shared data directory")
    table, cols = features(data)
    raw = table[cols].to_numpy()
    spk = table.speaker.to_numpy()
    # Per-speaker z-normalisation over all of the speaker's clips (the reference's wording;
    # it needs the speaker's angry clips too, which a live call does not have).
    z_all = table.groupby("speaker")[cols].transform(lambda v: (v - v.mean()) / (v.std() + 1e-9))
    # Relative to the speaker's neutral/calm clips only (what a live baseline can know).
    calm = table[table.emotion.isin(["neutral", "calm"])].groupby("speaker")[cols].mean()
    rel = raw - calm.loc[spk].to_numpy()
    names = sorted(set(spk))
    six = np.array([names.index(v) % 6 for v in spk])
    loso = np.array([names.index(v) for v in spk])
    print("| folds | normalisation | C | anger vs all | vs neutral/calm | " + " | ".join(
        sorted(set(table.emotion) - {"angry"})) + " |")
    for fname, folds in [("6 by speaker", six), ("leave one speaker out", loso)]:
        for nname, X in [("speaker z, all clips", z_all.to_numpy()), ("minus speaker's neutral/calm mean", rel)]:
            for c in [1.0, 0.1]:
                auc, nc, by = evaluate(table, cols, X, folds, c)
                print(f"| {fname} | {nname} | {c} | {auc:.3f} | {nc:.3f} | "
                      + " | ".join(f"{v:.3f}" for v in by.values()) + " |")


if __name__ == "__main__":
    main()
