"""The clips `--attention int8` is chosen on for the `cpu` target; prints two manifest paths.

Both are tuning data, disjoint from every reported set (benchmarks/tools/sets.py: eval sentences
40-79, seed 1) and from the demo's (eval 0-15):
- eval sentences 80-119, seed 2 (benchmarks/int8-choice/sets.py's tuning set, 80 clips);
- eval sentences 120-271, seed 3, the rest of the eval sentences (304 clips).
Each sentence is synthesised clean and with one Voices-in-the-Wild condition.

    python benchmarks/onnx-speed/tune_sets.py
"""

from asrquant.data.default_set import build_set
from asrquant.data.sentences import load_sentences

SETS = (("tune", slice(80, 120), 2), ("tunerest", slice(120, 272), 3))  # kinds differ: clip ids stay unique

if __name__ == "__main__":
    sentences = load_sentences("eval")
    print(*(build_set(kind, sentences[s], seed=seed, show_progress=True) / "manifest.jsonl" for kind, s, seed in SETS))
