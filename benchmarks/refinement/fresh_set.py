"""Fresh tuning clips: the tuning sentences (eval sentences 80-271, benchmarks/onnx-speed/tune_sets.py)
synthesised with a seed no set of the project uses (9: a clip's speaking rate, voice noise and its
condition's draw are seeded), each clean and with one Voices-in-the-Wild condition: 384 clips.

Every candidate since the built-in refined recipe was judged on tune-all.jsonl, the 384 clips the
built-in recipe itself was chosen on; these clips carry the same sentences (no reporting sentence
is spent) but none of those recordings, so a recipe's margin over another can be read again on
clips neither was chosen on (fresh-tune.sh).

Writes OUT/tune-fresh.jsonl (audio paths absolute) and prints its path.

    python benchmarks/refinement/fresh_set.py OUT
"""

import json
import sys
from pathlib import Path

from asrquant.data.default_set import build_set
from asrquant.data.sentences import load_sentences

sys.path.insert(0, str(Path(__file__).parent))
from calib_pool import rows_of  # noqa: E402

SENTENCES = slice(80, 272)  # tune_sets.py's two parts, tune (80-119) and tunerest (120-271)
SEED = 9


def main(out: Path) -> None:
    sentences = load_sentences("eval")[SENTENCES]
    rows = rows_of(build_set("tunefresh", sentences, seed=SEED, show_progress=True) / "manifest.jsonl")
    if len(rows) != 2 * len(sentences) or {r["text"] for r in rows} != set(sentences):
        raise SystemExit(f"expected each of {len(sentences)} sentences clean and degraded, got {len(rows)} clips")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tune-fresh.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
