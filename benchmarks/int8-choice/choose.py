"""The number of encoder Linears to keep on float compute, read off the tuning bench: the skip-N row
with the fewest word errors over the tuning clips (ties: the smaller N, the faster artifact). Prints N.

    python benchmarks/int8-choice/choose.py TUNE.json
"""

import json
import re
import sys


def main(path: str) -> None:
    errors = {}
    for run in json.load(open(path))["runs"]:
        m = re.search(r"skip-(\d+)$", run["spec"].rstrip("/"))
        if m:
            errors[int(m.group(1))] = sum(c["errors"] for c in run["clips"])
    best = min(errors, key=lambda n: (errors[n], n))
    print(best)
    print("word errors by N: " + ", ".join(f"{n}: {e}" for n, e in sorted(errors.items())), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1])
