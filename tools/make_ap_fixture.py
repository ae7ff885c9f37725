"""Writes crates/colorproxy-data/tests/fixtures/ap_cases.json: average precision of seeded random
score/label sets from scikit-learn's average_precision_score (difficult labels 0 left out) and from
the PASCAL VOC2007 devkit's 11-point formula (VOCevalcls.m, ported line by line below).

Command: .venv/bin/pip install scikit-learn && .venv/bin/python tools/make_ap_fixture.py
"""
import json
import numpy as np
import sklearn
from sklearn.metrics import average_precision_score


def voc07_ap(conf, gt):
    # VOCevalcls.m: [so,si]=sort(-out); tp=gt(si)>0; fp=gt(si)<0; fp=cumsum(fp); tp=cumsum(tp);
    # rec=tp/sum(gt>0); prec=tp./(fp+tp); ap=sum over t=0:0.1:1 of max(prec(rec>=t))/11.
    si = np.argsort(-conf, kind="stable")
    tp = np.cumsum(gt[si] > 0)
    fp = np.cumsum(gt[si] < 0)
    rec = tp / np.sum(gt > 0)
    with np.errstate(invalid="ignore"):
        prec = tp / (fp + tp)
    ap = 0.0
    for t in np.arange(0, 1.1, 0.1):
        p = prec[(rec >= t - 1e-12) & ~np.isnan(prec)]
        ap += (p.max() if p.size else 0.0) / 11
    return ap


rng = np.random.default_rng(2007)
cases = []
for i in range(12):
    n = int(rng.integers(5, 60))
    gt = rng.choice([1, -1, -1, 0], size=n)
    gt[0] = 1
    scores = rng.normal(size=n) + 0.8 * (gt > 0)
    if i % 4 == 3:
        scores = np.round(scores, 1)  # ties: sklearn groups them; the devkit uses the stable order
    keep = gt != 0
    cases.append({
        "scores": [float(np.float32(s)) for s in scores],
        "labels": [int(g) for g in gt],
        "sklearn_ap": float(average_precision_score(gt[keep] > 0, np.float32(scores[keep]))),
        "voc07_ap": float(voc07_ap(np.float32(scores), gt)),
    })
with open("crates/colorproxy-data/tests/fixtures/ap_cases.json", "w") as f:
    json.dump({"sklearn_version": sklearn.__version__, "cases": cases}, f, indent=1)
