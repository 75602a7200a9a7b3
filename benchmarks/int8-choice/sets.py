"""The three sets of this campaign; prints ``CALIB TUNE REPORT`` (three manifest paths).

- CALIB and REPORT: the shared ones (benchmarks/tools/sets.py): calibration sentences (seed 0) and
  eval sentences 40-79 (seed 1), never used for a choice;
- TUNE: eval sentences 80-119, seed 2, clean + one Voices-in-the-Wild condition each (80 clips):
  disjoint from REPORT's sentences and from the demo's (eval 0-15); the number of Linears kept on
  float compute is chosen on it.

    python benchmarks/int8-choice/sets.py
"""

from asrquant.data.default_set import build_set, default_calib_set
from asrquant.data.sentences import load_sentences

TUNE_SENTENCES = slice(80, 120)
TUNE_SEED = 2
REPORT_SENTENCES = slice(40, 80)  # as benchmarks/tools/sets.py
REPORT_SEED = 1

if __name__ == "__main__":
    calib = default_calib_set() / "manifest.jsonl"
    report = build_set("report", load_sentences("eval")[REPORT_SENTENCES], seed=REPORT_SEED) / "manifest.jsonl"
    tune = build_set("tune", load_sentences("eval")[TUNE_SENTENCES], seed=TUNE_SEED) / "manifest.jsonl"
    print(calib, tune, report)
