"""Module dependency cycles of every crate under crates/ (the structure check of issue 24).

    python3 tools/module_cycles.py          # prints each crate's cycles; exits 1 if any

A module is a source file (`a/b.rs` or `a/b/mod.rs` is `a::b`; lib.rs/main.rs is the root). Module
A depends on module B when A's code names an item of B: `crate::b::...`, `super::...`, `self::...`
(with `{...}` groups expanded) or a child module `b::...` from its parent; the target is the
longest module prefix of the path. Comments, `#[cfg(test)]` tails and `pub use` re-exports (a
parent publishing its children's items is not a dependency of the parent on them) are left out.
Cycles are the strongly connected components with more than one module.
"""
import os
import re
import sys


def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith(".rs"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, src)[:-3].split("/")
                if rel[-1] == "mod":
                    rel = rel[:-1]
                if rel in (["lib"], ["main"]):
                    rel = []
                mods[tuple(rel)] = path
    return mods


def reexports(mods):
    """Per module, the items it re-exports (`pub use a::b::{X, Y}`) and where they come from."""
    out = {}
    for m, path in mods.items():
        text = re.sub(r"//[^\n]*", "", open(path, encoding="utf-8").read())
        for stmt in re.findall(r"pub use ([^;]*);", text):
            stmt = re.sub(r"\s+", "", stmt)
            g = re.match(r"(.*)::\{(.*)\}$", stmt)
            items = [(g.group(1), it) for it in g.group(2).split(",") if it] if g else [stmt.rsplit("::", 1)]
            for prefix, item in items:
                parts = prefix.split("::")
                if parts[0] == "crate":
                    base = []
                    parts = parts[1:]
                elif parts[0] == "super":
                    base = list(m)
                    while parts and parts[0] == "super":
                        base, parts = base[:-1], parts[1:]
                else:
                    base = list(m)
                    if parts[0] == "self":
                        parts = parts[1:]
                out.setdefault(m, {})[item.split("as")[0]] = tuple(base + parts)
    return out


def edges(mods):
    again = reexports(mods)

    def resolve(path):
        path = tuple(path)
        for k in range(len(path), -1, -1):
            if path[:k] in mods:
                item = path[k] if k < len(path) else None
                via = again.get(path[:k], {}).get(item)
                if via is not None and via != path[:k] and tuple(via) + path[k:] != path:
                    return resolve(tuple(via) + path[k:])
                return path[:k]
        return ()

    out = {}
    for m, path in mods.items():
        text = open(path, encoding="utf-8").read()
        cut = text.find("#[cfg(test)]")
        if cut >= 0:
            text = text[:cut]
        text = re.sub(r"//[^\n]*", "", text)
        text = re.sub(r"pub use [^;]*;", "", text)
        refs = []
        for prefix, body in re.findall(r"((?:crate|super|self)(?:::\w+)*)::\{([^{}]*)\}", text):
            refs += [prefix + "::" + it.strip().split(" as ")[0] for it in body.split(",") if it.strip()]
        refs += re.findall(r"(?:crate|super|self)(?:::\w+)+", text)
        children = [k[-1] for k in mods if len(k) == len(m) + 1 and k[: len(m)] == m]
        refs += ["self::" + c for c in children if re.search(r"(?<![:\w])" + c + r"::", text)]
        for r in refs:
            parts = r.split("::")
            if parts[0] == "crate":
                base, rest = [], parts[1:]
            elif parts[0] == "self":
                base, rest = list(m), parts[1:]
            else:
                base = list(m)
                while parts and parts[0] == "super":
                    base, parts = base[:-1], parts[1:]
                rest = parts
            target = resolve(base + rest)
            if target != m:
                out.setdefault(m, set()).add(target)
    return out


def cycles(nodes, graph):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted("::".join(x) or "<root>" for x in comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates")
    bad = False
    for crate in sorted(os.listdir(root)):
        mods = modules(os.path.join(root, crate, "src"))
        found = cycles(mods, edges(mods))
        bad |= bool(found)
        print(f"{crate}: {len(mods)} modules, " + (f"cycles {found}" if found else "no cycles"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
