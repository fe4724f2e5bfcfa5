"""Render docs/benchmarks.md's tables from docs/benchmarks.json (written by bench_core.py)."""

from __future__ import annotations

import json
import sys


def table(rows: dict, title: str) -> str:
    out = [f"| {title} | median | min – max |", "| --- | --- | --- |"]
    for name, r in rows.items():
        out.append(f"| {name} | {r['ratio']:.3f}× | {r['min']:.2f} – {r['max']:.2f} |")
    return "\n".join(out)


def main(path: str = "docs/benchmarks.json") -> None:
    res = json.load(open(path))
    print("Machine:", json.dumps(res["machine"]))
    print("\nHook micro-cost (extra µs):\n")
    print("| measurement | µs |\n| --- | --- |")
    for k, v in res["hook_micro_us"].items():
        print(f"| {k} | {v:.1f} |")
    print("\nExtraction (50 pairs, layers 0 and 4 of a Llama d512×8):\n")
    print(table(res["extraction_llama_d512x8_layers_0_4"], "ratio"))
    for key in [k for k in res if k.startswith("apply_")]:
        print(f"\nSteered / unsteered generate() wall time, {key[len('apply_') :]} (128 new tokens, greedy):\n")
        print(table(res[key], "vector, scope"))


if __name__ == "__main__":
    main(*sys.argv[1:])
