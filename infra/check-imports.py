#!/usr/bin/env python3
"""The import graph of the workspace's Rust crates: no circles, and no arrow running back up.

Usage: python3 infra/check-imports.py [--graph]

Every `crate::…` and `super::…` path in a crate's non-test code is an arrow from the file
that writes it to the file that defines the module it names, except a file's use of its own
stage's mod.rs (the `Deps` the stage hands to its parts). The check fails when

- files import each other in a circle (in any crate), or
- an arrow in the ingestlayer library runs against its layering: a stage uses the adapters
  (slack/, aws/) and the shared modules (event, ids, config, error, purpose, event_links, journey),
  never a stage on its own floor or above (connect and warehouse above routing and ingress, routing above
  delivery), and an adapter never uses a stage.

`--graph` prints every arrow (file -> file), so anyone can see the shape without other tools.
Run by `make lint` and `make test`.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES = {
    "functions/ingestlayer/src": "lib.rs",
    "infra/slack-standin/src": "lib.rs",
    "infra/discord-standin/src": "lib.rs",
    "infra/telegram-standin/src": "lib.rs",
    "infra/notion-standin/src": "lib.rs",
    "infra/standin-server/src": "lib.rs",
    "infra/message-box/src": "lib.rs",
    "infra/local/src": "lib.rs",
    "infra/cli/src": "lib.rs",
}
# The library's floors, bottom up. A module may use modules on lower floors only
# (within a folder, files may use each other as long as there is no circle).
FLOORS = {
    "config": 0,
    "error": 1,
    "event": 2, "ids": 2, "purpose": 2, "webhook_signature": 2,
    "aws": 3,
    "slack": 4, "event_links": 4, "journey": 4, "outbound": 4,
    "delivery": 5,
    # dispatch (webhooks, Discord, Telegram, email, Notion) delivers with delivery's
    # ledger, pacing and retry policy.
    "routing": 6, "ingress": 6, "dispatch": 6,
    "connect": 7, "warehouse": 7,
}
PATH = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")


def strip_tests(text: str) -> str:
    """Drops `#[cfg(test)] mod … { … }` blocks and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def module_of(src: Path, file: Path) -> list:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def file_of(src: Path, module: list):
    """The file defining the longest prefix of `module` that is a module."""
    for n in range(len(module), 0, -1):
        base = src.joinpath(*module[:n])
        for f in (base.with_suffix(".rs"), base / "mod.rs"):
            if f.is_file():
                return f
    return None


def arrows(src: Path):
    files = [f for f in src.rglob("*.rs") if "bin" not in f.relative_to(src).parts]
    edges = {}
    for f in files:
        here = module_of(src, f)
        targets = set()
        for m in PATH.finditer(strip_tests(f.read_text())):
            segs = m.group(2).split("::")[1:]
            if m.group(1) == "crate":
                module = segs
            else:
                base = list(here)
                while segs and segs[0] == "super":
                    segs = segs[1:]
                    base = base[:-1]
                module = base[:-1] + segs
            t = file_of(src, module)
            # A file's use of its own stage's mod.rs (the stage's Deps, which that mod.rs
            # hands to it) is the stage's wiring, not an arrow.
            own_stage = t is not None and t.name == "mod.rs" and f.is_relative_to(t.parent)
            if t is not None and t != f and t.name != "lib.rs" and not own_stage:
                targets.add(t)
        edges[f] = targets
    return edges


def circles(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def floor(src: Path, f: Path):
    top = f.relative_to(src).parts[0].removesuffix(".rs")
    return top, FLOORS.get(top)


def main() -> int:
    show = "--graph" in sys.argv
    problems = []
    total = 0
    for rel in CRATES:
        src = ROOT / rel
        edges = arrows(src)
        for f, ts in sorted(edges.items()):
            for t in sorted(ts):
                total += 1
                if show:
                    print(f"{f.relative_to(ROOT)} -> {t.relative_to(ROOT)}")
                if rel == "functions/ingestlayer/src":
                    (a, fa), (b, fb) = floor(src, f), floor(src, t)
                    if a != b and (fa is None or fb is None or fb >= fa):
                        problems.append(
                            f"arrow up: {f.relative_to(ROOT)} ({a}, floor {fa}) uses "
                            f"{t.relative_to(ROOT)} ({b}, floor {fb})"
                        )
        for comp in circles(edges):
            names = ", ".join(sorted(str(c.relative_to(ROOT)) for c in comp))
            problems.append(f"circle: {names}")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"imports: {total} arrows in {len(CRATES)} crates, "
          f"{sum(p.startswith('circle') for p in problems)} circles, "
          f"{sum(p.startswith('arrow up') for p in problems)} arrows up")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
