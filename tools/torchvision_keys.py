#!/usr/bin/env python3
"""Writes torchvision's state-dict keys, shapes and dtypes for the architectures colorproxy exports.

The fixture the export test compares against (crates/colorproxy-nn/tests/fixtures/torchvision-keys.tsv):
one line per tensor, `arch<TAB>name<TAB>shape (comma-separated, empty for a scalar)<TAB>dtype`.

Run in the `scripts/setup.sh --bench` environment (torch 2.11.0, torchvision 0.26.0):
    .venv/bin/python tools/torchvision_keys.py > crates/colorproxy-nn/tests/fixtures/torchvision-keys.tsv
"""
import torch
import torchvision

ARCHS = ["vgg16", "alexnet", "resnet18", "resnet50", "resnet152"]


def main():
    print(f"# torch {torch.__version__}, torchvision {torchvision.__version__}; made by tools/torchvision_keys.py")
    for arch in ARCHS:
        # weights=None: the architecture only (nothing is downloaded).
        model = getattr(torchvision.models, arch)(weights=None)
        for name, t in model.state_dict().items():
            shape = ",".join(str(s) for s in t.shape)
            print(f"{arch}\t{name}\t{shape}\t{str(t.dtype).removeprefix('torch.')}")


if __name__ == "__main__":
    main()
