#!/usr/bin/env python3
"""A picture of segmentation examples: image | ground truth | one column per run's predictions.

    .venv/bin/python tools/seg_examples.py --data DEVKIT --split val --out FILE.png \
        --pred "random=DIR" --pred "colorization=DIR" [--ids ID ...] [--n 6] [--scale 2]

DIR holds one palette PNG per image, as `colorproxy eval seg --save-predictions DIR` writes. Without
--ids the first N ids of ImageSets/Segmentation/SPLIT.txt are shown; a legend of DATA/class_names.txt
with the palette's colours is drawn below. Pillow only.
"""
import argparse
from pathlib import Path

from PIL import Image, ImageDraw


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--split", default="val")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--pred", action="append", default=[], help="LABEL=DIR (repeatable)")
    ap.add_argument("--ids", nargs="*")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--scale", type=int, default=1)
    args = ap.parse_args()
    preds = [p.split("=", 1) for p in args.pred]
    ids = args.ids or (args.data / f"ImageSets/Segmentation/{args.split}.txt").read_text().split()[: args.n]
    gt0 = Image.open(args.data / f"SegmentationClass/{ids[0]}.png")
    palette = gt0.getpalette()
    w, h = gt0.size[0] * args.scale, gt0.size[1] * args.scale
    head, pad, foot = 18, 4, 20
    cols = ["image", "ground truth"] + [label for label, _ in preds]
    names_file = args.data / "class_names.txt"
    names = names_file.read_text().split() if names_file.is_file() else []
    body = head + len(ids) * (h + pad) + pad
    sheet = Image.new("RGB", (len(cols) * (w + pad) + pad, body + (foot if names else 0)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(cols):
        draw.text((pad + c * (w + pad), 3), name, fill="black")
    for r, iid in enumerate(ids):
        tiles = [Image.open(args.data / f"JPEGImages/{iid}.jpg").convert("RGB"),
                 Image.open(args.data / f"SegmentationClass/{iid}.png")]
        for _, d in preds:
            p = Image.open(Path(d) / f"{iid}.png")
            if p.mode != "P":
                p = p.convert("L").convert("P")
                p.putpalette(palette)
            tiles.append(p)
        for c, t in enumerate(tiles):
            t = t.convert("RGB").resize((w, h), Image.NEAREST)
            sheet.paste(t, (pad + c * (w + pad), head + pad + r * (h + pad)))
    # legend: the class colours of the palette, class_names.txt's order (0 = background)
    x = pad
    for k, name in enumerate(names):
        draw.rectangle([x, body + 4, x + 10, body + 14], fill=tuple(palette[3 * k:3 * k + 3]),
                       outline="gray")
        draw.text((x + 14, body + 3), name, fill="black")
        x += 14 + int(draw.textlength(name)) + 10
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({len(ids)} images x {len(cols)} columns)")


if __name__ == "__main__":
    main()
