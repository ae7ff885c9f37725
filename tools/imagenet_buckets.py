"""WordNet-derived label buckets for ImageNet (the paper's Table 4, hierarchical buckets): maps
each class (a WordNet id, as ImageNet's class folders are named) to its ancestor at a given depth
of the WordNet noun hierarchy, written as the `class bucket` file that
`colorproxy pretrain-supervised --buckets FILE` and recipes' `label_space.buckets_file` read.

    python3 tools/imagenet_buckets.py --is-a wordnet.is_a.txt --classes IMAGENET/train \
        --depth 6 --out imagenet-buckets.txt

`wordnet.is_a.txt` is ImageNet's hierarchy file (one `parent child` pair of wnids per line, as
distributed with ImageNet's metadata). A class with several parents takes the path through the
smallest parent wnid, so the result is fixed. A class whose path is shorter than the depth is its
own bucket. Standard library only; reads local files, downloads nothing.
"""
import argparse
import collections
import os
import sys


def read_is_a(path):
    parents = collections.defaultdict(list)
    with open(path) as f:
        for no, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                sys.exit(f"{path}:{no}: expected `parent child`, got {line.strip()!r}")
            parents[parts[1]].append(parts[0])
    return {c: sorted(p) for c, p in parents.items()}


def path_to_root(wnid, parents):
    """The chain root ... wnid, through the smallest parent at each step."""
    chain, seen = [wnid], {wnid}
    while chain[-1] in parents:
        p = parents[chain[-1]][0]
        if p in seen:
            sys.exit(f"cycle in the hierarchy at {p}")
        seen.add(p)
        chain.append(p)
    return chain[::-1]


def buckets(classes, parents, depth):
    out = {}
    for c in classes:
        chain = path_to_root(c, parents)
        out[c] = chain[depth] if depth < len(chain) else c
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--is-a", required=True, help="wordnet.is_a.txt (parent child wnid pairs)")
    ap.add_argument("--classes", required=True, help="a folder of class folders, or a file of wnids")
    ap.add_argument("--depth", type=int, required=True, help="depth of the bucket (0: the root)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if os.path.isdir(a.classes):
        classes = sorted(d for d in os.listdir(a.classes) if os.path.isdir(os.path.join(a.classes, d)))
    else:
        classes = [l.split()[0] for l in open(a.classes) if l.strip()]
    parents = read_is_a(a.is_a)
    unknown = [c for c in classes if c not in parents]
    if unknown:
        sys.exit(f"{len(unknown)} classes are not in {a.is_a}, e.g. {unknown[:5]}")
    m = buckets(classes, parents, a.depth)
    with open(a.out, "w") as f:
        f.write(f"# class bucket: ancestor at depth {a.depth} of {a.is_a}\n")
        for c in classes:
            f.write(f"{c} {m[c]}\n")
    print(f"{len(classes)} classes -> {len(set(m.values()))} buckets; wrote {a.out}")


if __name__ == "__main__":
    main()
