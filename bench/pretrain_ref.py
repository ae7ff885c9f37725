"""PyTorch speed reference for colorproxy's Rust pretraining.

Mirrors colorproxy's Rust network, loss and batch exactly (VGG-16 on gray input
with affine-free BatchNorm after every conv, fc6/fc7 as convolutions, a sparse
hypercolumn sampled with grid_sample at random points, a 2-layer head giving
32-bin hue and chroma histograms, weighted KL loss, SGD with momentum), written
the way an ordinary PyTorch user would.  Used only to compare training speed.

Usage: python bench/pretrain_ref.py --images DIR [--steps 30] [--warmup 5]
       [--width 0.125] [--fc 128] [--hidden 128] [--crop 64] [--batch 16]
       [--points 32] [--border 8] [--short-min 72] [--short-max 96] [--lr 0.01]
       [--threads 2] [--seed 0]
Prints one JSON line: {"compute_images_per_s": X, "e2e_images_per_s": Y}
"""
import argparse, json, os, sys, time
from types import SimpleNamespace
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:  # the end-to-end measurement needs Pillow and numpy; compute-only needs torch alone
    import numpy as np
    from data_ref import EXTS, sample  # noqa: E402
except ImportError as e:
    np = sample = None
    print(f"end-to-end reference skipped: {e}", file=sys.stderr)

VGG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class ColorNet(nn.Module):
    def __init__(self, width, fc, hidden):
        super().__init__()
        layers, c_in, taps = [], 1, [1]  # taps: channel count of each hypercolumn tap (input first)
        for v in VGG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            c = max(1, round(v * width))
            layers += [nn.Conv2d(c_in, c, 3, padding=1),
                       nn.BatchNorm2d(c, affine=False, momentum=0.1, eps=1e-5), nn.ReLU(inplace=True)]
            c_in = c
            taps.append(c)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Conv2d(c_in, fc, 7, padding=3), nn.BatchNorm2d(fc, affine=False), nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Conv2d(fc, fc, 1), nn.BatchNorm2d(fc, affine=False), nn.ReLU(inplace=True), nn.Dropout(0.5))
        taps += [fc, fc]
        self.head = nn.Sequential(nn.Linear(sum(taps), hidden), nn.ReLU(inplace=True), nn.Dropout(0.5))
        self.hue = nn.Linear(hidden, 32)
        self.chroma = nn.Linear(hidden, 32)

    @staticmethod
    def sample_tap(feat, pts, stride):
        """Bilinear sample feat [B,C,H,W] at input-pixel points pts [B,P,2] (y,x) -> [B,C,P]."""
        h, w = feat.shape[2:]
        off = (stride - 1) / 2
        cy = ((pts[..., 0] - off) / stride).clamp(0, h - 1)
        cx = ((pts[..., 1] - off) / stride).clamp(0, w - 1)
        gx = 2 * cx / (w - 1) - 1 if w > 1 else torch.zeros_like(cx)
        gy = 2 * cy / (h - 1) - 1 if h > 1 else torch.zeros_like(cy)
        grid = torch.stack([gx, gy], dim=-1).unsqueeze(2)  # [B,P,1,2] in (x,y) order
        out = F.grid_sample(feat, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out.squeeze(3)

    def forward(self, x, pts):
        cols, stride = [self.sample_tap(x, pts, 1)], 1
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                cols.append(self.sample_tap(x, pts, stride))
            elif isinstance(layer, nn.MaxPool2d):
                stride *= 2
        for layer in self.classifier:
            x = layer(x)
            if isinstance(layer, nn.Dropout):
                cols.append(self.sample_tap(x, pts, stride))
        hc = torch.cat(cols, dim=1).permute(0, 2, 1).reshape(-1, sum(c.shape[1] for c in cols))
        h = self.head(hc)
        return self.hue(h), self.chroma(h)


def kl_loss(logits, q, w, n):
    logp = F.log_softmax(logits, dim=1)
    kl = (q * (q.clamp(min=1e-30).log() - logp)).sum(dim=1)
    return (w * kl).sum() / n


DEVICE = torch.device("cpu")


def train_step(model, opt, gray, pts, hue_q, chroma_q, weights):
    gray, pts, hue_q, chroma_q, weights = (t.to(DEVICE, non_blocking=True)
                                           for t in (gray, pts, hue_q, chroma_q, weights))
    b, p = pts.shape[:2]
    opt.zero_grad()
    hue, chroma = model(gray.unsqueeze(1), pts.float())
    loss = (kl_loss(hue, hue_q.reshape(b * p, 32), weights[..., 0].reshape(-1), b * p)
            + kl_loss(chroma, chroma_q.reshape(b * p, 32), weights[..., 1].reshape(-1), b * p))
    loss.backward()
    opt.step()
    return loss.item()


class Photos(torch.utils.data.Dataset):
    def __init__(self, files, a, seed):
        self.files, self.a, self.seed = files, a, seed

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        for k in range(len(self.files)):  # skip undecodable files, like data_ref does
            try:
                item = sample(self.files[(i + k) % len(self.files)], np.random.default_rng(self.seed + i), self.a)
            except Exception:
                continue
            return tuple(torch.from_numpy(np.ascontiguousarray(t)) for t in item[:5])  # lab unused by the loss
        raise RuntimeError("no decodable images")


def synthetic_batch(a):
    g = torch.Generator().manual_seed(1234)
    b, p, s = a.batch, a.points, a.crop
    gray = torch.randn(b, s, s, generator=g)
    pts = torch.randint(a.border, s - a.border, (b, p, 2), generator=g)
    hue_q = torch.rand(b, p, 32, generator=g)
    chroma_q = torch.rand(b, p, 32, generator=g)
    weights = torch.rand(b, p, 2, generator=g)
    return gray, pts, hue_q / hue_q.sum(-1, keepdim=True), chroma_q / chroma_q.sum(-1, keepdim=True), weights


def timed(model, opt, batches, warmup, steps):
    losses = [train_step(model, opt, *next(batches)) for _ in range(warmup)]
    t0 = time.perf_counter()
    losses += [train_step(model, opt, *next(batches)) for _ in range(steps)]
    return steps * opt.batch_size / (time.perf_counter() - t0), losses


def make_model(a):
    model = ColorNet(a.width, a.fc, a.hidden).to(DEVICE).train()
    named = list(model.named_parameters())
    opt = torch.optim.SGD([
        {"params": [p for n, p in named if not n.endswith("bias")], "lr": a.lr, "weight_decay": 5e-4},
        {"params": [p for n, p in named if n.endswith("bias")], "lr": 2 * a.lr, "weight_decay": 0.0},
    ], lr=a.lr, momentum=0.9)
    opt.batch_size = a.batch
    return model, opt


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", required=True)
    for name, typ, default in [("steps", int, 30), ("warmup", int, 5), ("width", float, 0.125),
                               ("fc", int, 128), ("hidden", int, 128), ("crop", int, 64),
                               ("batch", int, 16), ("points", int, 32), ("border", int, 8),
                               ("short-min", int, 72), ("short-max", int, 96), ("lr", float, 0.01),
                               ("threads", int, 2), ("seed", int, 0), ("device", str, "cpu"),
                               ("workers", int, 2)]:
        p.add_argument("--" + name, type=typ, default=default)
    a = p.parse_args()
    global DEVICE
    DEVICE = torch.device(a.device)
    if DEVICE.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    # 1. compute only: one fixed synthetic batch, reused every step.
    model, opt = make_model(a)
    batch = synthetic_batch(a)
    compute, losses = timed(model, opt, iter(lambda: batch, None), a.warmup, a.steps)
    print(f"compute-only loss: first {losses[0]:.4f} last {losses[-1]:.4f}", file=sys.stderr)

    if sample is None:
        print(json.dumps({"compute_images_per_s": round(compute, 3), "e2e_images_per_s": None}))
        return
    # 2. end to end: Pillow decoding in DataLoader workers, waiting for data included.
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(a.images) for f in fs
                   if os.path.splitext(f)[1].lower() in EXTS)
    if not files:
        raise SystemExit(f"no images under {a.images}")
    da = SimpleNamespace(size=a.crop, short_min=a.short_min, short_max=a.short_max,
                         points=a.points, border=a.border)
    loader = torch.utils.data.DataLoader(Photos(files, da, a.seed), batch_size=a.batch, shuffle=True,
                                         num_workers=a.workers, drop_last=True, persistent_workers=True,
                                         pin_memory=DEVICE.type == "cuda")

    def cycle():
        while True:
            yield from loader

    model, opt = make_model(a)
    e2e, _ = timed(model, opt, cycle(), a.warmup, a.steps)
    print(json.dumps({"compute_images_per_s": round(compute, 3), "e2e_images_per_s": round(e2e, 3)}))


if __name__ == "__main__":
    main()
