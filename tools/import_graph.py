#!/usr/bin/env python3
"""Prints the crate's module import graph and fails on a cycle between top-level modules.

Reads every `crate::a::b` path in src/ (in `use` lines and inline, comments and strings
excluded) and records an edge from the file's module to the module it names. Top-level modules
(`model`, `backend`, `format`, ...) must form a graph without cycles: imports point down
(docs/architecture.md). Inside `backend/cpu` the same holds between its files.

Usage: python3 tools/import_graph.py [--all]   (--all prints every edge, not only the summary)
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
# `crate::`, `super::` or `self::` and what follows: a path, or a `{...}` group (read by `group`).
START = re.compile(r"\b(crate|super|self)::")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Groups checked for cycles: (name, how a file maps to a node, which files count).
SCOPES = []


def strip(text):
    """Drop comments, char and string literals so that prose naming `crate::x` is not an import."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"'(?:\\.|[^'\\\n])'", "''", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def file_module(path):
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["bin", "gander"]):
        return []
    return parts


def paths(text, i):
    """The module paths written at `text[i:]` (just after `crate::` and the like): one path, or
    every path of a `{...}` group, nested groups included. Returns (paths, end)."""
    out, prefix = [], []
    while i < len(text):
        if text[i] == "{":
            depth, j = 1, i + 1
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            inner = text[i + 1 : j - 1]
            items, depth, start = [], 0, 0
            for k, ch in enumerate(inner + ","):
                depth += {"{": 1, "}": -1}.get(ch, 0)
                if ch == "," and depth == 0:
                    items.append(inner[start:k].strip())
                    start = k + 1
            for item in items:
                if item and item != "self":
                    sub, _ = paths(item, 0)
                    out += [prefix + p for p in sub]
            return out, j
        m = NAME.match(text, i)
        if not m:
            break
        prefix = prefix + [m.group(0)]
        i = m.end()
        if text.startswith("::", i):
            i += 2
        else:
            break
    return ([prefix] if prefix else []), i


def targets(text, module):
    """Absolute module paths named in `text`; `super::` (any number) and `self::` resolve
    against `module` (a file `a/b.rs` is module a::b and its `super` is a; `a/mod.rs` is a,
    whose `super` is the parent)."""
    text = strip(text)
    for m in START.finditer(text):
        if m.start() >= 2 and text[m.start() - 2 : m.start()] == "::":
            continue  # the inner `super` of `super::super::x`, read with the outer one
        root = {"crate": [], "super": module[:-1], "self": module}[m.group(1)]
        found, _ = paths(text, m.end())
        for p in found:
            p = list(p)
            while p and p[0] == "super":
                root, p = root[:-1], p[1:]
            yield root + p


def edges():
    out = set()
    for path in sorted(SRC.rglob("*.rs")):
        src = file_module(path)
        for dst in targets(path.read_text(), src):
            out.add((tuple(src), tuple(dst)))
    return out


def cycles(graph):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, found, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def graph_of(all_edges, node_of):
    g = {}
    for src, dst in all_edges:
        a, b = node_of(src), node_of(dst)
        if a and b and a != b:
            g.setdefault(a, set()).add(b)
    return g


def main():
    all_edges = edges()
    top_modules = {p.stem if p.is_file() else p.name for p in SRC.iterdir()} - {"lib", "bin"}
    top = graph_of(all_edges, lambda m: m[0] if m and m[0] in top_modules else None)
    cpu = graph_of(all_edges, lambda m: name_of("backend::cpu", m))
    gpu = graph_of(all_edges, lambda m: name_of("backend::gpu", m))
    failed = False
    for name, g in (("top-level modules", top), ("backend::cpu", cpu), ("backend::gpu", gpu)):
        print(f"{name}:")
        for a in sorted(g):
            print(f"  {a} -> {', '.join(sorted(g[a]))}")
        for comp in cycles(g):
            failed = True
            print(f"  CYCLE: {' <-> '.join(comp)}")
            # Name the imports that close each cycle, so the fix is findable.
            for a in comp:
                for b in comp:
                    if b in g.get(a, ()):
                        where = sorted("::".join(s) or "lib" for s, d in all_edges if name_of(name, s) == a and name_of(name, d) == b)
                        print(f"    {a} -> {b}: in {', '.join(where)}")
    if "--all" in sys.argv:
        for src, dst in sorted(all_edges):
            print("::".join(src) or "lib", "->", "::".join(dst))
    if failed:
        print("import graph: cycles found (imports must point down; see docs/architecture.md)")
        sys.exit(1)
    print("import graph: no cycles")


def name_of(scope, m):
    """The node of module path `m` in `scope`: its top-level module, or its file inside
    backend/cpu or backend/gpu (an item of the folder's mod.rs is the node `mod`)."""
    if scope == "top-level modules":
        return m[0] if m else None
    prefix = ("backend", "cpu") if scope == "backend::cpu" else ("backend", "gpu")
    if len(m) < 2 or tuple(m[:2]) != prefix:
        return None
    if len(m) > 2 and (SRC.joinpath(*prefix, m[2] + ".rs").exists() or SRC.joinpath(*prefix, m[2]).is_dir()):
        return m[2]
    return "mod"


if __name__ == "__main__":
    main()
