"""Token parity of an ONNX export against the torch reference on real clips.

The reference is our torch model (any family), quantized in place by the same recipe when there is one
(the fake-quant forward of the same :class:`~asrquant.quant.QuantizedWeight`s the export packed).
Both sides decode every clip the same way; the report lists every clip whose tokens differ.

    python -m asrquant.export.onnx.parity whisper-base runs/base-onnx@int4 --recipe rtn-int4-g64 \\
        --data ../shared/data/vitw8/manifest.jsonl --data ../shared/data/dev/manifest.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field


@dataclass
class ClipParity:
    id: str
    same: bool
    first_difference: int | None  # index of the first differing token
    reference: str
    candidate: str


@dataclass
class ParityReport:
    clips: list[ClipParity] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    @property
    def identical(self) -> int:
        return sum(c.same for c in self.clips)

    @property
    def fraction(self) -> float:
        return self.identical / len(self.clips) if self.clips else 0.0

    def differences(self) -> str:
        lines = [f"{self.identical}/{len(self.clips)} clips with identical tokens"]
        for c in self.clips:
            if not c.same:
                lines.append(f"  {c.id}: first difference at token {c.first_difference}\n"
                             f"    reference: {c.reference}\n    candidate: {c.candidate}")
        return "\n".join(lines)


def _first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def torch_reference(model_spec: str, recipe_spec: str | None = None, calib: str | None = None, threads: int = 2):
    """Our torch transcriber of ``model_spec``, fake-quantized by the recipe when one is given."""
    import torch

    from ... import families
    from ...quant.command import load_checkpoint

    torch.set_num_threads(threads)
    ckpt, _ = load_checkpoint(model_spec, recipe_spec, calib, progress=False)
    return families.module(ckpt.family, "torch_session").open_transcriber(ckpt, model_spec)


def compare(reference, candidate, manifests: list[str], beam_size: int = 1, max_new_tokens: int = 224) -> ParityReport:
    """Decode every clip of ``manifests`` with both transcribers (each clip in its own language)."""
    from ...audio import load_audio
    from ...eval.manifest import read_manifests

    report = ParityReport(seconds={"reference": 0.0, "candidate": 0.0})
    for clip in read_manifests(manifests):
        audio = load_audio(clip.audio)
        outs = []
        for side, t in (("reference", reference), ("candidate", candidate)):
            start = time.perf_counter()
            outs.append(t.transcribe(audio, clip.lang, beam_size, max_new_tokens))
            report.seconds[side] += time.perf_counter() - start
        ref, cand = outs
        report.clips.append(ClipParity(clip.id, ref.tokens == cand.tokens, _first_difference(ref.tokens, cand.tokens),
                                       ref.text, cand.text))
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m asrquant.export.onnx.parity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="the source model (registry name or directory)")
    p.add_argument("artifact", help="the ONNX export, DIR or DIR@VARIANT")
    p.add_argument("--recipe", help="the recipe the variant was quantized with (the reference applies it too)")
    p.add_argument("--calib", help="calibration manifest, for recipes that need one")
    p.add_argument("--data", action="append", required=True, help="manifest.jsonl; repeat for several")
    p.add_argument("--beam", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    from ...runtime.onnx import open_onnx_engine

    reference = torch_reference(args.model, args.recipe, args.calib, args.threads)
    candidate = open_onnx_engine(args.artifact, args.threads).transcriber
    report = compare(reference, candidate, args.data, args.beam)
    print(report.differences())
    print(f"decode seconds: torch {report.seconds['reference']:.1f}, onnx {report.seconds['candidate']:.1f}")
    return 0 if report.identical == len(report.clips) else 1


if __name__ == "__main__":
    sys.exit(main())
