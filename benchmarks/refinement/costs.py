"""The cost columns of a quantization (or bench) from the files run.sh / halves.sh leave beside it.

    python benchmarks/refinement/costs.py runs/refinement/whisper-base/q-gptq runs/.../q-dwq-block ...

For each PREFIX: PREFIX.time (`/usr/bin/time -v`) gives CPU seconds (user + system), wall and
peak RSS; PREFIX.load (`uptime` before and after) the load averages around it. The machine is
shared: the CPU seconds are the measure of the code, the wall time is that of the machine's day.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def _field(text: str, label: str) -> str:
    m = re.search(rf"{re.escape(label)}: (.+)", text)
    return m.group(1).strip() if m else ""


def _seconds(clock: str) -> float:
    """h:mm:ss or m:ss(.ss) -> seconds."""
    parts = [float(p) for p in clock.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def _loads(path: Path) -> str:
    if not path.exists():
        return "—"
    firsts = [re.search(r"load average: ([\d.]+)", line) for line in path.read_text().splitlines()]
    return " → ".join(m.group(1) for m in firsts if m)


def row(prefix: str) -> str:
    text = Path(prefix + ".time").read_text()
    cpu = float(_field(text, "User time (seconds)")) + float(_field(text, "System time (seconds)"))
    wall = _seconds(_field(text, "Elapsed (wall clock) time (h:mm:ss or m:ss)"))
    rss = int(_field(text, "Maximum resident set size (kbytes)")) / 1e6
    status = _field(text, "Exit status")
    return (f"| `{Path(prefix).name}` | {cpu:.1f} | {int(wall // 60)} min {wall % 60:.0f} s | {rss:.2f} GB | "
            f"{_loads(Path(prefix + '.load'))} | {status} |")


def main() -> None:
    print("| run | CPU s (user + sys) | wall | peak RSS | load average 1 min (before → after) | exit |")
    print("|---|---:|---:|---:|---|---|")
    for prefix in sys.argv[1:]:
        print(row(prefix))


if __name__ == "__main__":
    main()
