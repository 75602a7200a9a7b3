"""The wide reporting set: the 40 reporting sentences (benchmarks/tools/sets.py: eval sentences
40-79, used for no choice) synthesised with three more seeds (6, 7, 8: a clip's speaking rate and
voice noise are seeded; no set of the project uses them), each clean and in every one of the eight
Voices-in-the-Wild conditions: 40 x 3 x 9 = 1080 clips, some 15,000 words. The 80 reporting clips
hold 1118 words, too few for an interval below a 1 pp upper end; these are the same sentences, so
they are held out in the same way.

Builds into OUT (once; a built seed is reused) and writes OUT/report-wide.jsonl (audio paths
absolute); prints its path.

    python benchmarks/refinement/wide_set.py OUT
"""

import json
import sys
import tempfile
from pathlib import Path

from asrquant.data import tts, wild
from asrquant.data.common import MANIFEST_JSONL
from asrquant.data.sentences import load_sentences

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tools"))
from calib_pool import rows_of  # noqa: E402
from sets import REPORT_SENTENCES  # noqa: E402

SEEDS = (6, 7, 8)


def main(out: Path) -> None:
    sentences = load_sentences("eval")[REPORT_SENTENCES]
    rows = []
    for seed in SEEDS:
        part = out / f"reportwide{seed}"
        if not (part / MANIFEST_JSONL).is_file():  # wild.generate writes its directory atomically
            with tempfile.TemporaryDirectory(prefix=".tts-", dir=out) as tmp:
                clean = tts.generate(sentences, Path(tmp) / "tts", seed=seed, prefix=f"reportwide{seed}")
                wild.generate(clean, part, seed=seed, each=True, include_clean=True)
        rows += rows_of(part / MANIFEST_JSONL)
    assert len(rows) == len(sentences) * len(SEEDS) * (len(wild.CONDITIONS) + 1), len(rows)
    assert {r["text"] for r in rows} == set(sentences)
    path = out / "report-wide.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
