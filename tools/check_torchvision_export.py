#!/usr/bin/env python3
"""Loads colorproxy's torchvision export into stock torchvision models and compares features.

For VGG-16 and ResNet-50 at full width: pretrain for 4 iterations (tools/torchvision-check/*.toml,
so the weights and BN statistics are not an init), `colorproxy export` (with --rgb into a stock
model, and gray into a model whose first convolution takes 1 channel), `load_state_dict(strict=True)`,
then the same images through torchvision and through `colorproxy features`. Prints, per layer, the
largest absolute difference relative to the largest activation; exits 1 above 1e-4.

Run in the `scripts/setup.sh --bench` environment after `cargo build --release`:
    .venv/bin/python tools/check_torchvision_export.py [--images DIR] [--work DIR]
"""
import argparse
import pathlib
import subprocess
import sys

import torch
import torchvision
from safetensors.torch import load_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "colorproxy"
TARGET = 1e-4


def run(*args):
    print("$", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, stdout=subprocess.DEVNULL)


def vgg16_features(model, x):
    """conv1_2, conv5_3 (after ReLU) and fc7 (after ReLU) as torchvision computes them."""
    f = model.features
    conv1_2 = f[:4](x)
    conv5_3 = f[:30](x)
    h = torch.flatten(model.avgpool(f(x)), 1)
    fc7 = model.classifier[:5](h)
    return {"conv1_2": conv1_2, "conv5_3": conv5_3, "fc7": fc7}


def resnet_features(model, x):
    h = model.relu(model.bn1(model.conv1(x)))
    out = {"conv1": h}
    h = model.maxpool(h)
    for name in ["layer1", "layer2", "layer3", "layer4"]:
        h = getattr(model, name)(h)
        out[name] = h
    return out


ARCHS = {
    "vgg16": (["conv1_2", "conv5_3", "fc7"], vgg16_features),
    "resnet50": (["conv1", "layer2", "layer4"], resnet_features),
}


def gray_first_conv(model, arch):
    """The model with its first convolution taking 1 input channel (for a gray export)."""
    if arch == "vgg16":
        model.features[0] = torch.nn.Conv2d(1, 64, 3, padding=1)
    else:
        model.conv1 = torch.nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    return model


def check(arch, images, work):
    layers, fn = ARCHS[arch]
    run_dir = work / arch
    ck = run_dir / "checkpoints" / "last.safetensors"
    if not ck.exists():
        run(BIN, "pretrain", "--config", ROOT / "tools" / "torchvision-check" / f"{arch}.toml",
            "--data", images, "--out", run_dir, "--force")
    feats_path = work / f"{arch}-features.safetensors"
    run(BIN, "features", "--checkpoint", ck, "--data", images, "--layers", ",".join(layers),
        "--size", "224", "--limit", "4", "--out", feats_path, "--force")
    ours = load_file(str(feats_path))
    worst = 0.0
    for rgb in [True, False]:
        out = work / f"{arch}-{'rgb' if rgb else 'gray'}.safetensors"
        run(BIN, "export", "--checkpoint", ck, "--out", out, "--force", *(["--rgb"] if rgb else []))
        model = getattr(torchvision.models, arch)(weights=None)
        if not rgb:
            model = gray_first_conv(model, arch)
        missing = model.load_state_dict(load_file(str(out)), strict=True)
        assert not missing.missing_keys and not missing.unexpected_keys
        model.eval()
        x = ours["input"]
        if rgb:
            x = x.repeat(1, 3, 1, 1)
        with torch.no_grad():
            theirs = fn(model, x)
        for layer in layers:
            a, b = theirs[layer], ours[layer]
            if layer == "fc7":
                b = b[:, :, 3, 3]  # torchvision's fc6/fc7 = colorproxy's at the centre of the 7x7 map
            rel = ((a - b).abs().max() / b.abs().max()).item()
            worst = max(worst, rel)
            print(f"{arch:9s} {'rgb' if rgb else 'gray':4s} {layer:8s} shape {tuple(a.shape)}  "
                  f"max |torchvision - colorproxy| / max |colorproxy| = {rel:.2e}")
    return worst


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "photos" / "val"))
    p.add_argument("--work", default="/tmp/colorproxy-torchvision-check")
    a = p.parse_args()
    torch.set_num_threads(2)
    work = pathlib.Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    worst = max(check(arch, a.images, work) for arch in ARCHS)
    print(f"largest relative difference {worst:.2e} (target {TARGET:.0e}): {'ok' if worst <= TARGET else 'FAILED'}")
    sys.exit(0 if worst <= TARGET else 1)


if __name__ == "__main__":
    main()
