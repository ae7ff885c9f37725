"""Plain Python reference for the colorization training-data pipeline.

Pillow + numpy, written the way a typical PyTorch user would write a Dataset's
__getitem__.  It mirrors colorproxy's Rust pipeline step for step (decode,
random short-side resize, random crop + mirror, gray input, random points,
hue/chroma 7x7 window histograms via summed-area tables, per-point weights,
CIE Lab targets) and is used only as a speed baseline for the benchmark.

Usage: python bench/data_ref.py --images DIR --count N [--seed S] [--size 352]
       [--short-min 352] [--short-max 600] [--points 128] [--border 96]
Prints one JSON line: {"images": N, "seconds": S, "images_per_s": R, "skipped": K}
"""
import argparse, itertools, json, os, time
import numpy as np
from PIL import Image

EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
BINS, WIN = 32, 3  # 32 bins, 7x7 window (radius 3)
M = np.array([[0.4124564, 0.3575761, 0.1804375],
              [0.2126729, 0.7151522, 0.0721750],
              [0.0193339, 0.1191920, 0.9503041]], dtype=np.float32)
WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)


def hue_chroma(rgb):
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(axis=2), rgb.min(axis=2)
    c = mx - mn
    d = np.where(c > 0, c, 1)
    rc, gc, bc = (mx - r) / d, (mx - g) / d, (mx - b) / d
    h = np.select([r == mx, g == mx], [bc - gc, 2 + rc - bc], 4 + gc - rc)
    h = np.where(c > 0, (h / 6) % 1.0, 0)
    return h, c


def window_hist(bins, ys, xs):
    h, w = bins.shape
    onehot = np.eye(BINS, dtype=np.int32)[bins]                        # (H,W,32)
    sat = np.zeros((h + 1, w + 1, BINS), dtype=np.int32)
    sat[1:, 1:] = onehot.cumsum(axis=0).cumsum(axis=1)
    y0, y1 = np.clip(ys - WIN, 0, h), np.clip(ys + WIN + 1, 0, h)
    x0, x1 = np.clip(xs - WIN, 0, w), np.clip(xs + WIN + 1, 0, w)
    counts = (sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]).astype(np.float32)
    tot = counts.sum(axis=1, keepdims=True)
    return np.where(tot > 0, counts / np.maximum(tot, 1), 1.0 / BINS)


def lab_ab(px):
    lin = np.where(px > 0.04045, ((px + 0.055) / 1.055) ** 2.4, px / 12.92)
    t = (lin @ M.T) / WHITE
    d = 6 / 29
    f = np.where(t > d ** 3, np.cbrt(t), t / (3 * d * d) + 4 / 29)
    a, b = 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])
    return np.stack([a, b], axis=1) / 110


def sample(path, rng, a):
    img = Image.open(path).convert("RGB")
    s = int(rng.integers(a.short_min, a.short_max + 1))
    w, h = img.size
    nw, nh = (s, round(h * s / w)) if w <= h else (round(w * s / h), s)
    img = img.resize((nw, nh), Image.BILINEAR)
    x, y = int(rng.integers(0, nw - a.size + 1)), int(rng.integers(0, nh - a.size + 1))
    img = img.crop((x, y, x + a.size, y + a.size))
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    rgb = np.asarray(img, dtype=np.float32) / 255
    gray = rgb.mean(axis=2) - 0.4488
    pts = rng.integers(a.border, a.size - a.border, size=(a.points, 2))
    ys, xs = pts[:, 0], pts[:, 1]
    # Like the Rust side, only the bounding box of the points' windows is binned and summed.
    y0, x0 = max(ys.min() - WIN, 0), max(xs.min() - WIN, 0)
    y1, x1 = min(ys.max() + WIN + 1, a.size), min(xs.max() + WIN + 1, a.size)
    hue, chroma = hue_chroma(rgb[y0:y1, x0:x1])
    ly, lx = ys - y0, xs - x0
    hue_hist = window_hist(np.minimum((hue * BINS).astype(np.int64), BINS - 1), ly, lx)
    chroma_hist = window_hist(np.minimum((chroma * BINS).astype(np.int64), BINS - 1), ly, lx)
    g = rgb[ys, xs].mean(axis=1)
    weights = np.stack([5 * chroma[ly, lx], np.minimum(1, np.minimum(3 * g, 3 * (1 - g)))], axis=1)
    return gray, pts, hue_hist, chroma_hist, weights, lab_ab(rgb[ys, xs])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=352)
    p.add_argument("--short-min", type=int, default=352)
    p.add_argument("--short-max", type=int, default=600)
    p.add_argument("--points", type=int, default=128)
    p.add_argument("--border", type=int, default=96)
    p.add_argument("--batch", type=int, default=16)
    a = p.parse_args()
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(a.images) for f in fs
                   if os.path.splitext(f)[1].lower() in EXTS)
    if not files:
        raise SystemExit(f"no images under {a.images}")
    rng = np.random.default_rng(a.seed)
    order = [files[i] for i in rng.permutation(len(files))]
    done = skipped = 0
    batch = []
    t0 = time.perf_counter()
    for path in itertools.cycle(order):
        if done >= a.count or (done == 0 and skipped >= len(files)):
            break
        try:
            item = sample(path, rng, a)
        except Exception:
            skipped += 1
            continue
        if len(batch) == a.batch:
            batch = []
        batch.append(item)
        done += 1
    secs = time.perf_counter() - t0
    print(json.dumps({"images": done, "seconds": round(secs, 4),
                      "images_per_s": round(done / secs, 3) if secs > 0 else 0.0,
                      "skipped": skipped}))


if __name__ == "__main__":
    main()
