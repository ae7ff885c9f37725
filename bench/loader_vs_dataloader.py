"""colorproxy.ColorizationLoader against torch.utils.data.DataLoader + Pillow + numpy targets.

Both build the same batches' work: decode, random short-side resize, random crop and mirror, gray
input, random points, 7x7 hue/chroma window histograms, loss weights and L*a*b* targets (the
DataLoader side is bench/data_ref.py's `sample`, the way a PyTorch user writes a Dataset), with the
crop, short-side range, points and border read from the colorproxy loader's resolved config. Each
side runs at 1 and 2 workers (colorproxy: data threads; DataLoader: worker processes), one warm-up
batch, then --batches timed batches. Prints one JSON line per run and the ratios.

    .venv/bin/python bench/loader_vs_dataloader.py [--images DIR] [--preset paper-vgg16]
"""
import argparse
import json
import os
import pathlib
import sys
import time
import tomllib

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import data_ref  # noqa: E402
from pretrain_ref import Photos  # noqa: E402  (the reference Dataset: data_ref.sample per item)

import colorproxy  # noqa: E402


def epochs(loader):
    while True:
        yield from loader


def timed(batches, count, batch):
    """Images/s over `count` batches after a warm-up batch, across epochs (so that what each side
    prefetched during the warm-up is a small part of the count)."""
    it = epochs(batches)
    next(it)  # warm-up: worker start, first decode
    t0 = time.perf_counter()
    for _ in range(count):
        next(it)
    secs = time.perf_counter() - t0
    return count * batch / secs


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = os.environ.get("COLORPROXY_SHARED_DATA", str(pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--images", default=os.path.join(shared, "photos", "train"))
    p.add_argument("--preset", default="paper-vgg16")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--batches", type=int, default=80)
    p.add_argument("--workers", default="1,2")
    a = p.parse_args()
    torch.set_num_threads(1)
    files = sorted(str(f) for f in pathlib.Path(a.images).rglob("*") if f.suffix.lower() in data_ref.EXTS)
    results = {}
    for w in [int(x) for x in a.workers.split(",")]:
        loader = colorproxy.ColorizationLoader(a.images, preset=a.preset, batch_size=a.batch_size, seed=0, workers=w)
        cfg = tomllib.loads(loader.config)["data"]
        ref_args = argparse.Namespace(
            size=cfg["augment"]["crop"], short_min=cfg["augment"]["short_side_min"],
            short_max=cfg["augment"]["short_side_max"], points=cfg["points"], border=cfg["border"],
        )
        n = a.batches
        ours = timed(loader, n, a.batch_size)
        ref = torch.utils.data.DataLoader(
            Photos(files, ref_args, 0), batch_size=a.batch_size, shuffle=True, num_workers=w,
            drop_last=True, generator=torch.Generator().manual_seed(0), persistent_workers=True,
        )
        theirs = timed(ref, n, a.batch_size)
        results[w] = (ours, theirs)
        print(json.dumps({"workers": w, "crop": ref_args.size, "points": ref_args.points, "batch": a.batch_size,
                          "batches": n, "colorproxy_images_per_s": round(ours, 1),
                          "dataloader_images_per_s": round(theirs, 1), "ratio": round(ours / theirs, 2)}),
              flush=True)
    for w, (ours, theirs) in results.items():
        print(f"{w} worker(s): ColorizationLoader {ours:.1f} images/s, DataLoader + Pillow + numpy {theirs:.1f} "
              f"images/s: {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
