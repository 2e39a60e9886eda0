#!/usr/bin/env python3
"""Trains NTA's random forest and scikit-learn's RandomForestClassifier on the same exported
lab data and prints fit time and held-out macro-F1 for both, per view.

    python3 infra/ml/compare_sklearn.py --lab .nta/lab/full-1 [--lab DIR ...] [--trees 100]

It runs `nta train --export-csv` (which also trains and times NTA's forest on exactly these
rows), then fits scikit-learn with the same hyper-parameters (trees, depth, sqrt(features) per
split, bootstrap) on the `train` rows and scores the `test` rows (held-out lab variations).
Missing features are NaN on both sides (scikit-learn >= 1.4 supports them in random forests).
Needs numpy and scikit-learn (pip install numpy scikit-learn).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(path):
    with open(path) as f:
        header = f.readline().rstrip("\n").split(",")
        n_feat = header.index("label")
        rows = [line.rstrip("\n").split(",") for line in f]
    x = np.array([[float(v) if v != "" else np.nan for v in r[:n_feat]] for r in rows], dtype=np.float64)
    y = np.array([int(r[n_feat]) for r in rows])
    split = np.array([r[n_feat + 2] for r in rows])
    return x, y, split


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lab", action="append", required=True)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--max-depth", type=int, default=20)
    ap.add_argument("--nta", default=os.path.join(ROOT, "target", "release", "nta"))
    args = ap.parse_args()
    out = tempfile.mkdtemp(prefix="nta-compare-")
    cmd = [args.nta, "train", "--export-csv", out, "--report", out, "-o", os.path.join(out, "model.nta-model"),
           "--trees", str(args.trees), "--max-depth", str(args.max_depth)]
    for lab in args.lab:
        cmd += ["--lab", lab]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "report.json")) as f:
        nta = json.load(f)
    print(f"{'view':<12} {'rows':>7} {'NTA fit s':>10} {'sklearn fit s':>14} {'ratio':>7} {'NTA macro-F1':>13} {'sklearn macro-F1':>17}")
    for view in ("source", "destination"):
        path = os.path.join(out, f"{view}.csv")
        if view not in nta or not os.path.exists(path):
            continue
        x, y, split = load(path)
        tr, te = split == "train", split == "test"
        clf = RandomForestClassifier(n_estimators=args.trees, max_depth=args.max_depth, max_features="sqrt",
                                     bootstrap=True, n_jobs=-1, random_state=42)
        t = time.time()
        clf.fit(x[tr], y[tr])
        sk_fit = time.time() - t
        # Macro-F1 over the classes present in the held-out truth, as NTA's report.
        labels = sorted(set(y[te].tolist()))
        sk_f1 = f1_score(y[te], clf.predict(x[te]), labels=labels, average="macro", zero_division=0) if te.any() else float("nan")
        nv = nta[view]
        print(f"{view:<12} {int(tr.sum()):>7} {nv['fit_seconds']:>10.2f} {sk_fit:>14.2f} {sk_fit / max(nv['fit_seconds'], 1e-9):>6.1f}x "
              f"{nv['evaluation']['macro_f1']:>13.3f} {sk_f1:>17.3f}")
    print(f"(exported data and NTA's report in {out})")


if __name__ == "__main__":
    sys.exit(main())
