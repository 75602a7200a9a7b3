"""The degraded calibration pool of wild-calib.sh: the built-in pool (`asrquant data default
--calib-pool`: 87 calibration sentences x 2 TTS seeds, each clean and in one condition, 348 clips)
with every clean clip replaced by the same clip under one Voices-in-the-Wild condition, drawn by
`wild.generate` (balanced over the eight conditions, degradation seed 100 + the TTS seed, which no
other set uses). The speech, the sentences, the clip count and the order (sentence by sentence, a
clip where its clean twin was) are the pool's; only the conditions differ: none clean, about 43
clips per condition where the pool has about 22.

Writes OUT/wildpool<seed>/ (once; reused when present) and OUT/pool-wild.jsonl (audio paths
absolute); prints its path.

    python benchmarks/refinement/wild_pool.py OUT
"""

import json
import sys
import tempfile
from pathlib import Path

from asrquant.data import wild
from asrquant.data.common import MANIFEST_JSONL
from asrquant.data.default_set import default_calib_pool

SEED_OFFSET = 100


def main(out: Path) -> None:
    pool = default_calib_pool()
    rows = [json.loads(line) for line in pool.read_text().splitlines() if line.strip()]
    for r in rows:
        r["audio"] = str((pool.parent / r["audio"]).resolve())
    clean = [r for r in rows if r["category"] == "clean"]
    if len(clean) * 2 != len(rows):
        raise SystemExit(f"{pool}: expected half of its {len(rows)} clips clean, found {len(clean)}")
    out.mkdir(parents=True, exist_ok=True)
    degraded = {}  # the clean clip's id -> its degraded twin's row
    for seed in sorted({r["tts"]["seed"] for r in clean}):
        part = out / f"wildpool{seed}"
        if not (part / MANIFEST_JSONL).is_file():  # wild.generate writes its directory atomically
            with tempfile.TemporaryDirectory(prefix=".clean-", dir=out) as tmp:
                src = Path(tmp) / MANIFEST_JSONL
                # ids "<clip>-w": the new clip "<clip>-w_<condition>" cannot collide with the pool's
                # "<clip>_<condition>" when the draw gives a sentence its pool condition again.
                src.write_text("".join(json.dumps({**r, "id": f"{r['source_id']}-w"}) + "\n"
                                       for r in clean if r["tts"]["seed"] == seed))
                wild.generate(src, part, seed=SEED_OFFSET + seed, include_clean=False)
        for r in (json.loads(line) for line in (part / MANIFEST_JSONL).read_text().splitlines() if line.strip()):
            r["audio"] = str((part / r["audio"]).resolve())
            degraded[r["source_id"].removesuffix("-w") + "_clean"] = r
    missing = [r["id"] for r in clean if r["id"] not in degraded]
    if missing:
        raise SystemExit(f"{out}: no degraded twin for {len(missing)} clean clips (first {missing[0]})")
    wild_rows = [degraded[r["id"]] if r["category"] == "clean" else r for r in rows]
    path = out / "pool-wild.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in wild_rows))
    print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
