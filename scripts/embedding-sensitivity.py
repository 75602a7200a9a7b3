"""How much does quantizing Whisper's tied token embedding change greedy transcripts?

Rounds only the table (every Linear stays float) to each scheme, by round to nearest or by GPTQ
on the final hidden states of teacher-forced calibration clips (the logits' inputs), and counts
the clips whose greedy tokens differ from the float model's.

    python scripts/embedding-sensitivity.py whisper-base --calib runs/data/wild-calib/manifest.jsonl \\
        --data ../shared/data/vitw8/manifest.jsonl --data ../shared/data/dev/manifest.jsonl
"""

from __future__ import annotations

import argparse

import torch

from asrquant.audio import load_audio
from asrquant.eval.manifest import read_manifests
from asrquant.models.whisper_load import load_whisper
from asrquant.quant.gptq import gptq
from asrquant.quant.qtensor import dequantize
from asrquant.quant.rtn import rtn
from asrquant.quant.scheme import QuantScheme
from asrquant.quantize import calibration_samples
from asrquant.runtime.torch_whisper import WhisperTorchSession
from asrquant.tokenizer import WhisperTokenizer
from asrquant.transcribe import WhisperGeneration, WhisperTranscriber

SCHEMES = [("rtn", QuantScheme.int(8, -1, True)), ("rtn", QuantScheme.int(8, 64, False)),
           ("rtn", QuantScheme.int(4, 64, False)), ("gptq", QuantScheme.int(4, 64, False)),
           ("rtn", QuantScheme.int(4, 32, False)), ("gptq", QuantScheme.int(4, 32, False))]


def final_hidden_hessian(ckpt, manifest: str, n: int) -> torch.Tensor:
    samples, _ = calibration_samples(ckpt, manifest, n, progress=False)
    d = ckpt.model.dims.n_text_state
    h, rows = torch.zeros(d, d, dtype=torch.float64), 0

    def hook(_m, _i, out):
        nonlocal h, rows
        x = out.reshape(-1, d).double()
        h += x.T @ x
        rows += x.shape[0]

    handle = ckpt.model.decoder.ln.register_forward_hook(hook)
    with torch.no_grad():
        for s in samples:
            ckpt.model.teacher_forced_logits(torch.from_numpy(s.mel)[None], torch.from_numpy(s.tokens)[None])
    handle.remove()
    return (h / rows).float()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--calib", required=True, help="calibration manifest (GPTQ rows)")
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_whisper(args.model)
    clips = read_manifests(args.data)
    audios = [load_audio(c.audio) for c in clips]
    gen = WhisperGeneration(tuple(ckpt.suppress_ids), tuple(ckpt.suppress_ids_begin), ckpt.dims.n_mels)
    transcriber = WhisperTranscriber(WhisperTorchSession(ckpt.model), WhisperTokenizer(ckpt.tokenizer_json, ckpt.multilingual), gen)
    emb = ckpt.model.decoder.token_embedding
    table = emb.weight.detach().clone()

    def tokens():
        return [transcriber.transcribe(a, c.lang or "en").tokens for a, c in zip(audios, clips)]

    reference = tokens()
    hessian = final_hidden_hessian(ckpt, args.calib, args.clips)
    print(f"{args.model}: {len(clips)} clips; greedy transcripts that differ from the float model's")
    for algo, scheme in SCHEMES:
        qw = rtn(table, scheme) if algo == "rtn" else gptq(table, hessian, scheme)
        with torch.no_grad():
            emb.weight.copy_(dequantize(qw))
        changed = [c.id for c, a, b in zip(clips, reference, tokens()) if a != b]
        print(f"  {algo:4s} {scheme.name:16s} {len(changed):3d}/{len(clips)}  {' '.join(changed[:6])}", flush=True)
        with torch.no_grad():
            emb.weight.copy_(table)


if __name__ == "__main__":
    main()
