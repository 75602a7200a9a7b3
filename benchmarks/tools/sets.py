"""The calibration and reporting manifests the campaigns share, built once and cached; prints
``CALIB REPORT`` (two paths) for a shell script's ``read -r CALIB REPORT``.

- calibration: the demo's default calibration set (calibration sentences only, seed 0);
- reporting: 40 evaluation sentences never used for a choice (``eval`` sentences 40-79, seed 1),
  each clean and with one Voices-in-the-Wild condition: 80 clips.

    python benchmarks/tools/sets.py
"""

from asrquant.data.default_set import build_set, default_calib_set
from asrquant.data.sentences import load_sentences

REPORT_SENTENCES = slice(40, 80)
REPORT_SEED = 1

if __name__ == "__main__":
    report = build_set("report", load_sentences("eval")[REPORT_SENTENCES], seed=REPORT_SEED)
    print(default_calib_set() / "manifest.jsonl", report / "manifest.jsonl")
