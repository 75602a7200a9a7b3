"""The calibration pool of calib-size.sh: every calibration sentence (87), synthesised with two
seeds (0 and 5: a clip's speaking rate and voice noise are seeded), each clean and with one
Voices-in-the-Wild condition -- 4 clips a sentence, 348 clips, no evaluation sentence among them.

Writes into OUT (audio paths absolute, so the manifests can live anywhere):
- pool-all.jsonl: all 348 clips, sentence by sentence (a prefix covers the sentences evenly);
- pool-h1.jsonl, pool-h2.jsonl: the clips of calibration sentences 0-43 and 44-86 (disjoint halves
  by sentence, 176 and 172 clips);
and prints the three paths.

    python benchmarks/refinement/calib_pool.py OUT
"""

import json
import sys
from pathlib import Path

from asrquant.data.default_set import build_set
from asrquant.data.sentences import load_sentences

SEEDS = (0, 5)
HALF = 44  # sentences 0-43 | 44-86


def rows_of(manifest: Path) -> list[dict]:
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for r in rows:
        r["audio"] = str((manifest.parent / r["audio"]).resolve())
    return rows


def main(out: Path) -> None:
    sentences = load_sentences("calib")
    index = {s: i for i, s in enumerate(sentences)}
    rows = []
    for seed in SEEDS:
        rows += rows_of(build_set(f"calibpool{seed}", sentences, seed=seed, show_progress=True) / "manifest.jsonl")
    for r in rows:
        if r["text"] not in index:
            raise SystemExit(f"clip {r['id']}: its text is not a calibration sentence")
    rows.sort(key=lambda r: index[r["text"]])  # stable: within a sentence, seed then clean/degraded order
    if len(rows) != 4 * len(sentences):
        raise SystemExit(f"expected {4 * len(sentences)} clips, got {len(rows)}")
    out.mkdir(parents=True, exist_ok=True)
    parts = {"all": rows, "h1": [r for r in rows if index[r["text"]] < HALF],
             "h2": [r for r in rows if index[r["text"]] >= HALF]}
    for name, part in parts.items():
        (out / f"pool-{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    print(*(out / f"pool-{name}.jsonl" for name in parts))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
