"""A calibration manifest with every transcript removed (audio paths absolute), so Whisper's
calibration teacher-forces the float model's own greedy text (pseudo-labels.sh, dwq-pseudo.sh).

    python benchmarks/refinement/unlabelled.py IN.jsonl OUT.jsonl
"""

import json
import sys
from pathlib import Path

from calib_pool import rows_of

if __name__ == "__main__":
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = [{**r, "text": ""} for r in rows_of(src)]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
