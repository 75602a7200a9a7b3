"""RTN costs against GPTQ costs (sensitivity.json vs sensitivity-gptq.json of one results folder): rank
agreement per scheme (Spearman over the Linears), and the tensors whose scheme the two auto recipes
pick differently.

    python benchmarks/refinement/compare_costs.py benchmarks/refinement/results/whisper-base
"""

import json
import re
import sys
from pathlib import Path

R = Path(sys.argv[1])
a = json.loads((R / "sensitivity.json").read_text())["tensors"]
b = json.loads((R / "sensitivity-gptq.json").read_text())["tensors"]


def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0] * len(v)
    for k, i in enumerate(order):
        r[i] = k
    return r


def spearman(x, y):
    rx, ry = ranks(x), ranks(y)
    n = len(x)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((p - mx) * (q - my) for p, q in zip(rx, ry))
    vx, vy = sum((p - mx) ** 2 for p in rx), sum((q - my) ** 2 for q in ry)
    return cov / (vx * vy) ** 0.5


names = [n for n in a if not a[n]["table"]]
for s in next(iter(a.values()))["kl"]:
    x = [a[n]["kl"][s] for n in names]
    y = [b[n]["kl"][s] for n in names]
    lower = sum(q < p for p, q in zip(x, y))
    print(f"{s}: Spearman {spearman(x, y):.3f}; sum RTN {sum(x):.4g}, sum GPTQ {sum(y):.4g}; "
          f"GPTQ lower on {lower}/{len(x)}")


def picks(path):
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"#   (\S+): .* -> (\S+)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


for b_ in ("4.5", "4"):
    p1, p2 = picks(R / f"auto-{b_}bpw.toml"), picks(R / f"auto-gptq-costs-{b_}bpw.toml")
    diff = [n for n in p1 if p1[n] != p2.get(n)]
    print(f"{b_} bpw: {len(diff)} of {len(p1)} tensors differ:", ", ".join(f"{n} {p1[n]}->{p2[n]}" for n in diff))
