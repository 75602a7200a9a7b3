"""Token for token: two ONNX artifacts (or variants) transcribing the same clips, greedy.

    python benchmarks/onnx-speed/token_parity.py DIR DIR@fused MANIFEST [MANIFEST ...] [--json OUT]

Prints and writes, per manifest, how many clips give the same token ids, and for each clip that
does not, the first position where they differ and both texts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asrquant.audio import load_audio
from asrquant.cpu import describe_cpu
from asrquant.models.whisper.onnx_session import open_onnx_artifact


def open_spec(spec: str, threads: int):
    directory, _, variant = spec.partition("@")
    return open_onnx_artifact(directory, threads, variant or None)[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("manifests", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    a, b = open_spec(args.a, args.threads), open_spec(args.b, args.threads)
    report = {"cpu": describe_cpu(), "a": args.a, "b": args.b, "sets": {}}
    for manifest in args.manifests:
        clips = [json.loads(line) for line in Path(manifest).read_text().splitlines() if line.strip()]
        diffs = []
        for c in clips:
            x = load_audio(Path(manifest).parent / c["audio"])
            ta, tb = a.transcribe(x, language=c.get("lang")), b.transcribe(x, language=c.get("lang"))
            if ta.tokens != tb.tokens:
                first = next((i for i, (p, q) in enumerate(zip(ta.tokens, tb.tokens)) if p != q),
                             min(len(ta.tokens), len(tb.tokens)))
                diffs.append({"id": c["id"], "first_difference": first, "a": ta.text, "b": tb.text})
        name = Path(manifest).parent.name
        report["sets"][name] = {"clips": len(clips), "same_tokens": len(clips) - len(diffs), "differ": diffs}
        print(f"{name}: {len(clips) - len(diffs)}/{len(clips)} clips with the same tokens")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
