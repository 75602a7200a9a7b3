"""Exit 0 when a bench report is on disk and whole: the campaign scripts skip a bench whose report
is complete and run it again otherwise. The bench writes its report after every finished run; a
run interrupted mid-way leaves one marked `settings.partial`, which is not done.

    python benchmarks/refinement/complete.py REPORT.json
"""

import json
import sys
from pathlib import Path

path = Path(sys.argv[1])
try:
    whole = path.is_file() and not json.loads(path.read_text(encoding="utf-8"))["settings"].get("partial")
except (ValueError, KeyError):  # unreadable or not a bench report: run the bench again
    whole = False
sys.exit(0 if whole else 1)
