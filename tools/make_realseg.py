"""Builds `realseg`: a small PASCAL-VOC-layout semantic-segmentation and multi-label classification
set of real photographs with exact masks. Real photo cut-outs (RGBA stamps) are composited onto
real background photos; the label of a pixel is the class of the top object whose alpha > 0.5
there, so masks match the composited pixels exactly.

Command (from the repository root; Pillow + numpy only, e.g. the project's .venv):

    .venv/bin/python tools/make_realseg.py --out data/realseg --cache /tmp/realseg-cache
        [--photos ../shared/data/photos] [--size 160] [--train 600] [--val 200] [--seed 0]
        [--val-objects unseen|seen]   (the README's figures: --out data/realseg-seen --val-objects seen)

Sources:
  * Objects: Debian 12 package tuxpaint-stamps-default 2022.06.04-1 (all),
    tuxpaint-stamps-default_2022.06.04-1_all.deb, SHA-256
    6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34, fetched with
    `apt-get download tuxpaint-stamps-default=2022.06.04-1` into --cache when missing, read with
    Python (ar + tar.xz), never installed. PNG stamps under /usr/share/tuxpaint/stamps/.
  * Backgrounds: the photos in PHOTOS/train (train split) and PHOTOS/val (val split), by default
    ../shared/data/photos; their sources and credits are in shared/data/LICENSES.md.

Licence rules:
  * Stamps: the package's debian/copyright has one stanza for all files, `Files: *`,
    `Copyright: 2002-2022 by Bill Kendrick`, `License: GPL-2` (version 2 or later). The script
    checks that this stanza is present. Only stamps that are photographs are used (checked on
    contact sheets; drawings, greyscale "colorable" stamps and a mirrored duplicate are left
    out, see CLASSES/EXCLUDE). The images written are derived from the stamps and the photos and
    carry their licences (GPL-2 for the objects; per photo for the backgrounds).
  * GCompris (gcompris-qt-data 3.1-2) was checked first: its Public Domain / CC0-1.0 images
    (per-folder README) have no alpha channel (categorization/*), and its alpha images are
    drawings, so no GCompris image is used as an object.

Layout written to --out: JPEGImages/<id>.jpg (quality 92), SegmentationClass/<id>.png (palette
PNG, VOC colour map, 0 = background, 1..K = CLASSES, 255 = void on a 1-pixel band at object
borders where alpha is in [0.25, 0.75]), ImageSets/Segmentation/{train,val,trainval}.txt,
ImageSets/Main/<class>_{train,val,trainval}.txt ("<id> 1" if >= 2 % of the image's pixels show
the class, "<id> 0" if fewer but some, else "<id> -1"), class_names.txt, README.md, LICENSES.md.

Determinism: sorted file lists; with --val-objects unseen (default) object instances are split
train/val by the SHA-1 of their group name
(every 4th group in hash order goes to val; names sharing a first word, e.g. gnu-*, stay
together); image i of split s uses numpy.random.default_rng([seed, s, i]).
"""
import argparse, hashlib, io, re, shutil, subprocess, sys, tarfile, time
from pathlib import Path

import numpy as np
from PIL import Image

DEB = "tuxpaint-stamps-default_2022.06.04-1_all.deb"
DEB_SPEC = "tuxpaint-stamps-default=2022.06.04-1"
DEB_SHA256 = "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34"
ROOT = "usr/share/tuxpaint/stamps/"
COPYRIGHT = "usr/share/doc/tuxpaint-stamps-default/copyright"
# class -> stamp folders (PNG files directly inside; the cartoon/ subfolders are not read)
CLASSES = {
    "bird": ["animals/birds"],
    "fish": ["animals/fish"],
    "flower": ["plants/flowers"],
    "fruit": ["food/fruit"],
    "instrument": ["hobbies/music/brass", "hobbies/music/percussion", "hobbies/music/string",
                   "hobbies/music/wind"],
    "mammal": ["animals/mammals", "animals/marsupials"] + [
        f"animals/mammals/{d}" for d in
        ("apes", "bears", "bovines", "camel", "cats", "deer", "dogs", "equines", "rodents")],
    "tool": ["household/tools"],
    "vegetable": ["food/vegetables"],
}
# not used: not a fish (lobster, shrimp), a drawing (hedgehog), greyscale (echidna), a machine
# rather than a hand tool (cementmixer), a mirrored copy (measuring_tape_mirror)
EXCLUDE = {"lobster", "shrimp", "hedgehog", "echidna", "cementmixer", "measuring_tape_mirror"}
NOMIRROR = {"measuring_tape"}  # printed text; the package ships a separate mirrored copy
# background photos that show an instance of one of the classes (seen on contact sheets)
EXCLUDE_BG = re.compile(
    r"^(gcompris-(africa|italy|japan|mexico|orchestra|animals-giraffe|resource-giraffe|bison|cat"
    r"|chicken|cow|dog|duck|fish\d+|hedgehog|horse|jaguar|kangaroo|kingfisher|koala|lemur|moose"
    r"|narwhal|owl|panda|red-panda|pig|pika|polar-bear|scarlet-macaw|sheep|sea3|cuttingtool"
    r"|hammer\d*|measuringtape\d*|multimeter\d*|nailcutter|plier\d*|scissors\d*|screwdriver\d*"
    r"|sickle|sidecutter\d*|spray|tweezer\d*|wrench\d*)|mvtb-(flowers\d+|tomato-\d+)"
    r"|jxl-(tmshre|u76c0g)-.*|opencv-(000|apple|baboon|chicky-512|fruits|orange|squirrel-cls)"
    r"|scratch-flower-bed|skimage-chelsea)$")
SPLITS = ("train", "val")


def fetch_deb(cache: Path) -> bytes:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / DEB
    if not path.is_file():
        print(f"downloading {DEB_SPEC} into {cache}", file=sys.stderr)
        subprocess.run(["apt-get", "download", DEB_SPEC], cwd=cache, check=True)
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != DEB_SHA256:
        sys.exit(f"{path}: SHA-256 mismatch (expected {DEB_SHA256})")
    return data


def read_deb(deb: bytes) -> dict:
    """Files of the .deb's data.tar.xz whose path starts with ROOT or is COPYRIGHT."""
    assert deb[:8] == b"!<arch>\n"
    pos, members = 8, {}
    while pos < len(deb):
        head = deb[pos:pos + 60]
        size = int(head[48:58])
        members[head[:16].decode().strip().rstrip("/")] = deb[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
    out = {}
    with tarfile.open(fileobj=io.BytesIO(members["data.tar.xz"]), mode="r:xz") as tar:
        for ti in tar:
            name = ti.name.lstrip("./")
            if ti.isfile() and (name == COPYRIGHT or (name.startswith(ROOT)
                                                        and name.endswith((".png", ".dat")))):
                out[name] = tar.extractfile(ti).read()
    return out


def load_objects(files: dict) -> dict:
    """class -> sorted list of dicts(name, path, rgba cropped to alpha > 0, mirror allowed)."""
    text = files[COPYRIGHT].decode()
    if not re.search(r"^Files: \*\nCopyright: .*Bill Kendrick.*\nLicense: GPL-2$", text, re.M):
        sys.exit("debian/copyright does not have the expected `Files: *` / GPL-2 stanza")
    objs = {}
    for cls, folders in CLASSES.items():
        objs[cls] = []
        for folder in folders:
            for path in sorted(p for p in files if p.endswith(".png")
                               and p.rsplit("/", 1)[0] == ROOT + folder):
                name = path.rsplit("/", 1)[1][:-4]
                dat = files.get(path[:-4] + ".dat", b"").decode().split()
                im = Image.open(io.BytesIO(files[path]))
                if name in EXCLUDE or im.mode in ("L", "LA") or "colorable" in dat:
                    continue
                rgba = np.asarray(im.convert("RGBA"))
                ys, xs = np.nonzero(rgba[..., 3])
                rgba = rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
                objs[cls].append(dict(name=name, path="/" + path, rgba=rgba,
                                      mirror="nomirror" not in dat and name not in NOMIRROR))
    return objs


def split_objects(objs: dict, val_objects: str) -> dict:
    """(class, split) -> instances. `unseen`: the instances are split by group (lower-cased name up
    to the first '-' or '_'), a quarter of the groups to val; `seen`: both splits draw from every
    instance (on disjoint backgrounds, at their own random scales, places and mirrorings)."""
    out = {}
    for cls, items in objs.items():
        if val_objects == "seen":
            out[cls, "train"] = list(items)
            out[cls, "val"] = list(items)
            continue
        group = lambda o: re.split(r"[-_]", o["name"].lower())[0]
        groups = sorted({group(o) for o in items}, key=lambda g: hashlib.sha1(g.encode()).hexdigest())
        val = {g for i, g in enumerate(groups) if i % 4 == 3}
        out[cls, "train"] = [o for o in items if group(o) not in val]
        out[cls, "val"] = [o for o in items if group(o) in val]
    return out


def voc_palette() -> list:
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def grow(m: np.ndarray, op) -> np.ndarray:
    """3x3 dilation (op=np.logical_or) or erosion (op=np.logical_and), edges replicated."""
    p = np.pad(m, 1, mode="edge")
    h, w = m.shape
    out = m.copy()
    for dy in range(3):
        for dx in range(3):
            out = op(out, p[dy:dy + h, dx:dx + w])
    return out


def make_image(rng, bgs, pool, names, size):
    with Image.open(bgs[rng.integers(len(bgs))]) as bg:
        bg = bg.convert("RGB")
        side = max(1, int(min(bg.size) * rng.uniform(0.5, 1.0)))
        x0 = rng.integers(bg.size[0] - side + 1)
        y0 = rng.integers(bg.size[1] - side + 1)
        bg = bg.resize((size, size), Image.BICUBIC, box=(x0, y0, x0 + side, y0 + side))
    canvas = np.asarray(bg, dtype=np.float32)
    label = np.zeros((size, size), np.uint8)
    used = []
    for _ in range(rng.integers(1, 4)):
        c = rng.integers(len(names))
        inst = pool[names[c]][rng.integers(len(pool[names[c]]))]
        used.append(inst)
        h, w = inst["rgba"].shape[:2]
        scale = rng.uniform(0.35, 0.80) * size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        im = Image.fromarray(inst["rgba"]).resize((nw, nh), Image.LANCZOS)  # premultiplied
        if rng.random() < 0.5 and inst["mirror"]:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        x = rng.integers(-(nw // 4), size - nw + nw // 4 + 1)
        y = rng.integers(-(nh // 4), size - nh + nh // 4 + 1)
        obj = np.asarray(im, dtype=np.float32)
        layer = np.zeros((size, size, 4), np.float32)  # the object on a size x size canvas
        ox0, oy0, ox1, oy1 = max(x, 0), max(y, 0), min(x + nw, size), min(y + nh, size)
        layer[oy0:oy1, ox0:ox1] = obj[oy0 - y:oy1 - y, ox0 - x:ox1 - x]
        a = layer[..., 3:] / 255.0
        canvas = a * layer[..., :3] + (1.0 - a) * canvas
        a = a[..., 0]
        mask = a > 0.5
        band = grow(mask, np.logical_or) & ~grow(mask, np.logical_and)
        label[mask] = c + 1
        label[band & (a >= 0.25) & (a <= 0.75)] = 255
    img = Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))
    return img, label, used


def main():
    repo = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--photos", type=Path, default=repo / "../shared/data/photos")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/realseg-cache"))
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--train", type=int, default=600)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-objects", choices=("unseen", "seen"), default="unseen",
                    help="unseen: val shows object instances never seen in training (class-level "
                    "generalisation from 7-44 training instances per class); seen: every instance appears in "
                    "both splits, on disjoint backgrounds (instance-level recognition)")
    args = ap.parse_args()
    t0 = time.time()
    objs = load_objects(read_deb(fetch_deb(args.cache)))
    pool = split_objects(objs, args.val_objects)
    names = sorted(CLASSES)
    bgs = {s: sorted(p for p in (args.photos / s).glob("*.jpg") if not EXCLUDE_BG.match(p.stem))
           for s in SPLITS}
    for s in SPLITS:
        if not bgs[s]:
            sys.exit(f"no background photos in {args.photos / s}")
    out = args.out
    for d in ("JPEGImages", "SegmentationClass", "ImageSets"):
        shutil.rmtree(out / d, ignore_errors=True)
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "ImageSets/Main"):
        (out / d).mkdir(parents=True, exist_ok=True)
    palette = voc_palette()
    ids = {s: [] for s in SPLITS}
    cls_lines = {(c, s): [] for c in names for s in SPLITS}
    counts = {(c, s): [0, 0] for c in names for s in SPLITS}  # positives, difficult
    used_objs = set()
    n_per = {"train": args.train, "val": args.val}
    for si, s in enumerate(SPLITS):
        spool = {c: pool[c, s] for c in names}
        for i in range(n_per[s]):
            rng = np.random.default_rng([args.seed, si, i])
            img, label, used = make_image(rng, bgs[s], spool, names, args.size)
            iid = f"{s}_{i:05d}"
            img.save(out / f"JPEGImages/{iid}.jpg", quality=92)
            png = Image.fromarray(label, mode="P")
            png.putpalette(palette)
            png.save(out / f"SegmentationClass/{iid}.png")
            ids[s].append(iid)
            used_objs.update(o["path"] for o in used)
            for c, cname in enumerate(names):
                n = int((label == c + 1).sum())
                v = 1 if n >= 0.02 * label.size else (0 if n > 0 else -1)
                cls_lines[cname, s].append(f"{iid} {v}")
                counts[cname, s][0] += v == 1
                counts[cname, s][1] += v == 0
    write = lambda p, lines: (out / p).write_text("".join(x + "\n" for x in lines))
    for s in SPLITS:
        write(f"ImageSets/Segmentation/{s}.txt", ids[s])
        for c in names:
            write(f"ImageSets/Main/{c}_{s}.txt", cls_lines[c, s])
    write("ImageSets/Segmentation/trainval.txt", ids["train"] + ids["val"])
    for c in names:
        write(f"ImageSets/Main/{c}_trainval.txt", cls_lines[c, "train"] + cls_lines[c, "val"])
    write("class_names.txt", ["background"] + names)
    write_docs(out, args, names, pool, counts, bgs, used_objs)
    print(f"wrote {args.train} + {args.val} images to {out} in {time.time() - t0:.1f} s")


def write_docs(out, args, names, pool, counts, bgs, used_objs):
    cmd = (f"tools/make_realseg.py --out {args.out} --size {args.size} --train {args.train} "
           f"--val {args.val} --seed {args.seed} --val-objects {args.val_objects}")
    rows = [f"| {c} | {len(pool[c, 'train'])} | {len(pool[c, 'val'])} | "
            f"{counts[c, 'train'][0]} ({counts[c, 'train'][1]}) | "
            f"{counts[c, 'val'][0]} ({counts[c, 'val'][1]}) |" for c in names]
    disjoint = ("disjoint object instances (val holds unseen objects)"
                if args.val_objects == "unseen" else
                "the same object instances (`--val-objects seen`: val shows the training "
                "objects on new backgrounds, at new scales and places)")
    (out / "README.md").write_text(f"""# realseg

Real photographs with exact masks, PASCAL VOC devkit layout: {args.train} train + {args.val} val
images of {args.size}x{args.size} px, {len(names)} object classes + background. Made by `{cmd}`.

Each image: a random square crop (0.5-1.0 of the shorter side) of a real background photo,
resized to {args.size} px, then 1-3 real-photo cut-outs (random class, longer side 35-80 % of
the image, random position with at most a quarter of the object outside, random mirror; later
objects occlude earlier ones), composited by their alpha channel with their colours untouched.
The mask is alpha > 0.5 of each object's visible part; pixels on the 1-pixel band around each
object border whose alpha is in [0.25, 0.75] are 255 (void). Train and val use disjoint
background photos ({len(bgs['train'])} / {len(bgs['val'])}; photos showing one of the classes
are left out) and {disjoint}.

Objects: photo stamps of Tux Paint (Debian package tuxpaint-stamps-default 2022.06.04-1,
licence GPL-2 per its debian/copyright). Backgrounds: shared/data/photos (licences and credits
in shared/data/LICENSES.md). Per-file list: LICENSES.md.

`ImageSets/Main/<class>_<split>.txt`: 1 if the class covers >= 2 % of the image, 0 (difficult)
if it is visible on fewer pixels, else -1.

| class | objects train | objects val | images train: 1 (0) | images val: 1 (0) |
|---|---|---|---|---|
""" + "\n".join(rows) + "\n")
    lines = ["# realseg: licences", "",
             f"Written by `tools/make_realseg.py` (--size {args.size} --train {args.train} "
             f"--val {args.val} --seed {args.seed} --val-objects {args.val_objects}) next to the images as LICENSES.md.", "",
             "Objects: Debian package tuxpaint-stamps-default 2022.06.04-1 "
             f"(`{DEB}`, SHA-256 `{DEB_SHA256}`). Its debian/copyright covers every file with "
             "one stanza: `Files: *`, `Copyright: 2002-2022 by Bill Kendrick "
             "<bill@newbreedsoftware.com>`, `License: GPL-2` (\"either version 2 of the License, "
             "or (at your option) any later version\"). The package has no per-file credits; "
             "upstream's docs/CONTRIBUTORS.txt (not in the package) names the photographers "
             "and sources of many stamps, some of them originally GFDL or CC BY-SA.", "",
             "| stamp (package path) | class | split | licence |", "|---|---|---|---|"]
    for c in names:
        for s in SPLITS:
            for o in pool[c, s]:
                mark = "" if o["path"] in used_objs else " (not drawn)"
                lines.append(f"| `{o['path']}` | {c} | {s}{mark} | GPL-2 (debian/copyright "
                             "`Files: *`) |")
    lines += ["", "Backgrounds: photos from shared/data/photos; the train images draw from "
              "`train/`, the val images from `val/` (the lists below; photos that show one of "
              "the classes are left out). Their sources, licences and credits: "
              "shared/data/LICENSES.md (a row per file).", ""]
    for s in SPLITS:
        lines.append(f"- {s} ({len(bgs[s])}): " + ", ".join(f"`{p.name}`" for p in bgs[s]))
    (out / "LICENSES.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
