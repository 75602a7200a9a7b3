"""Where whisper.cpp's computation departs from our torch fp32 reference: token ids per clip under
variants that remove one difference at a time.

    python benchmarks/whisper-cpp/f32/where.py MODEL F16_DIR --data MANIFEST --json OUT.json \
        [--f32 F32_DIR --driver BUILD/wcpp_tokens --dump-driver ...]

Variants (greedy, temperature 0, no fallback, one thread; whisper.cpp as our bench peer sets it):
  torch-fp32          our reference as the bench runs it (loop guard, at most 224 new tokens)
  torch-fp32-cap220   the same with no loop guard and at most 220 tokens (whisper.cpp's per-window
                      limit, n_text_ctx / 2 - 4): the reference for a clip that loops
  torch-w16           weights whisper.cpp holds in float16 (Linears, token table, convolution
                      kernels) rounded to float16, float32 compute
  torch-w16-a16       + ggml's float16 rounding points without flash attention: inputs of every
                      float16 matrix product and convolution (im2col) rounded to float16, keys and
                      values (the KV caches) and the attention probabilities too, sums in float32
  cpp-f16             pywhispercpp (whisper.cpp 1.8.5), our float16 file: the bench peer
  cpp-f16-noflash     the same, flash attention off (its default is on: a float16 accumulator)
  cpp-f16-ourmel      the same (flash on), our log-mel given through whisper_set_mel
  build-*             a build of whisper.cpp 1.8.5 with three changes (README), run by f32/wcpp_tokens.cpp:
                      build-f16 (stock paths: must equal cpp-f16), build-f32-kv32-noflash (float32
                      file, float32 KV caches, no flash attention: float32 throughout), the same
                      with our log-mel (build-f32-kv32-noflash-ourmel)
Token lists are compared whole and, for clips that loop, cut where our loop guard stops (the first
tokens of a greedy decoding do not depend on when it is stopped).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from asrquant.audio import load_audio
from asrquant.decoding import find_loop
from asrquant.features import log_mel

PEER = dict(redirect_whispercpp_logs_to=None, n_threads=1, print_progress=False, print_realtime=False,
            print_timestamps=False, no_context=True, no_timestamps=True, temperature=0.0, temperature_inc=0.0,
            greedy={"best_of": 1}, suppress_blank=True, suppress_nst=True, no_speech_thold=1.0)


def loop_cut(tokens: list[int]) -> list[int]:
    """The tokens up to where our loop guard stops a decoding (all of them if it never would)."""
    for n in range(1, len(tokens) + 1):
        if find_loop(tokens[:n]):
            return tokens[:n]
    return tokens


# --- torch ---------------------------------------------------------------------------------------------


def torch_tokens(model: str, clips, mode: str) -> list[list[int]]:
    import torch

    from asrquant.engines import open_torch_engine

    torch.set_num_threads(1)
    engine = open_torch_engine(model, threads=1)
    tr = engine.transcriber
    whisper = tr.session.model
    if mode in ("w16", "w16-a16"):
        with torch.no_grad():
            for name, p in whisper.named_parameters():
                if p.dim() >= 2 and "positional_embedding" not in name:  # what the file holds in float16
                    p.copy_(p.half().float())
    guard, budget = (False, 220) if mode == "cap220" else (True, 224)
    with emulate_ggml_f16(whisper) if mode == "w16-a16" else contextlib.nullcontext():
        return [tr.transcribe(a, "en", 1, budget, loop_guard=guard).tokens for a in clips]


@contextlib.contextmanager
def emulate_ggml_f16(whisper):
    """ggml's CPU float16 rounding points (whisper.cpp 1.8.5, float16 file, flash attention off)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from asrquant.models.whisper import model as wm

    def h(x):
        return x.half().float()

    saved = (nn.Linear.forward, nn.Conv1d.forward, wm.MultiHeadAttention.attend)

    def linear(self, x):  # ggml_mul_mat(W f16, x f32): x converted to float16, float32 sums
        return F.linear(h(x), self.weight, self.bias)

    def conv(self, x):  # ggml_conv_1d: im2col to float16
        return self._conv_forward(h(x), self.weight, self.bias)

    def attend(self, q, k, v, mask):  # keys / values cast (encoder) or cached (decoder) in float16
        b, t, d = q.shape
        n = self.n_head
        q = h(q).view(b, t, n, d // n).transpose(1, 2)
        k = h(k).view(b, k.shape[1], n, d // n).transpose(1, 2)
        v = h(v).view(b, v.shape[1], n, d // n).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / (d // n) ** 0.5
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        o = h(torch.softmax(s, -1)) @ v  # mul_mat(V f16, softmax): the probabilities in float16
        return self.out(o.transpose(1, 2).reshape(b, t, d))

    nn.Linear.forward, nn.Conv1d.forward, wm.MultiHeadAttention.attend = linear, conv, attend
    # the logits' product: the token table is float16 in the file, so the final norm's output is rounded
    # (the decoder's last LayerNorm feeds only that product)
    rounded_logits_input = whisper.decoder.ln.register_forward_hook(lambda _m, _args, out: h(out))
    try:
        yield
    finally:
        rounded_logits_input.remove()
        nn.Linear.forward, nn.Conv1d.forward, wm.MultiHeadAttention.attend = saved


# --- whisper.cpp -----------------------------------------------------------------------------------------


def cpp_tokens(model_file: str, clips, flash: bool = True, our_mel: bool = False) -> list[list[int]]:
    import _pywhispercpp as pw
    from pywhispercpp.model import Model

    m = Model(model_file, context_params={"flash_attn": flash}, **PEER)
    ctx, eot = m._ctx, pw.whisper_token_eot(m._ctx)
    out = []
    for audio in clips:
        if our_mel:
            mel = np.ascontiguousarray(log_mel(audio), dtype=np.float32)
            assert pw.whisper_set_mel(ctx, mel.ravel(), mel.shape[1], mel.shape[0]) == 0
            m._set_params({"language": "en"})
            assert pw.whisper_full(ctx, m._params, np.zeros(0, dtype=np.float32), 0) == 0
        else:
            m.transcribe(np.ascontiguousarray(audio, dtype=np.float32), language="en")
        out.append([t for t in (pw.whisper_full_get_token_id(ctx, i, j) for i in range(pw.whisper_full_n_segments(ctx))
                                for j in range(pw.whisper_full_n_tokens(ctx, i))) if t < eot])
    return out


def driver_tokens(driver: str, model_file: str, clips, flash: bool, our_mel: bool, env=None) -> list[list[int]]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for audio in clips:
            path = Path(tmp) / "in.f32"
            data = log_mel(audio) if our_mel else audio
            np.ascontiguousarray(data, dtype="<f4").tofile(path)
            args = [driver, model_file, "1" if flash else "0", str(path)] + (["mel"] if our_mel else [])
            r = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})})
            if r.returncode:
                raise RuntimeError(f"{args}: {r.returncode} {r.stderr[-500:]}")
            out.append([int(t) for t in r.stdout.split()])
    return out


def mel_difference(driver: str, model_file: str, clips) -> list[dict]:
    """whisper.cpp's own log-mel (the build dumps it) against asrquant.features.log_mel, the frames
    whisper.cpp's encoder takes (the first 3000)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for audio in clips:
            path, dump = Path(tmp) / "in.f32", Path(tmp) / "mel.bin"
            np.ascontiguousarray(audio, dtype="<f4").tofile(path)
            subprocess.run([driver, model_file, "1", str(path)], capture_output=True, check=True,
                           env={**os.environ, "WHISPER_DUMP_MEL": str(dump)})
            raw = dump.read_bytes()
            n_mel, n_len = np.frombuffer(raw[:8], dtype="<i4")
            theirs = np.frombuffer(raw[8:], dtype="<f4").reshape(n_mel, n_len)[:, :3000]
            ours = log_mel(audio)
            diff = np.abs(theirs.astype(np.float64) - ours)
            rows.append({"max_abs": float(diff.max()), "mean_abs": float(diff.mean())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("f16", help="our float16 export (directory)")
    ap.add_argument("--f32", help="our float32 export (directory), for the build variants")
    ap.add_argument("--driver", help="f32/wcpp_tokens built against whisper.cpp 1.8.5 with the README's three changes")
    ap.add_argument("--data", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--only", help="comma-separated variants (none: only the summary of what OUT.json holds)")
    args = ap.parse_args()
    manifest = Path(args.data)
    meta = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    clips = [load_audio(manifest.parent / c["audio"]) for c in meta]
    f16 = str(Path(args.f16) / "ggml-model.bin")
    f32 = str(Path(args.f32) / "ggml-model.bin") if args.f32 else None
    variants = {
        "torch-fp32": lambda: torch_tokens(args.model, clips, "fp32"),
        "torch-fp32-cap220": lambda: torch_tokens(args.model, clips, "cap220"),
        "torch-w16": lambda: torch_tokens(args.model, clips, "w16"),
        "torch-w16-a16": lambda: torch_tokens(args.model, clips, "w16-a16"),
        "cpp-f16": lambda: cpp_tokens(f16, clips),
        "cpp-f16-noflash": lambda: cpp_tokens(f16, clips, flash=False),
        "cpp-f16-ourmel": lambda: cpp_tokens(f16, clips, our_mel=True),
    }
    if args.driver:
        kv32 = {"WHISPER_ITYPE_F32": "1"}
        variants.update({
            "build-f16": lambda: driver_tokens(args.driver, f16, clips, True, False),
            "build-f16-noflash": lambda: driver_tokens(args.driver, f16, clips, False, False),
            "build-f16-kv32-noflash": lambda: driver_tokens(args.driver, f16, clips, False, False, kv32),
        })
        if f32:
            variants.update({
                "build-f32-noflash": lambda: driver_tokens(args.driver, f32, clips, False, False),
                "build-f32-kv32-noflash": lambda: driver_tokens(args.driver, f32, clips, False, False, kv32),
                "build-f32-kv32-noflash-ourmel": lambda: driver_tokens(args.driver, f32, clips, False, True, kv32),
            })
    out_path = Path(args.json)
    report = json.loads(out_path.read_text()) if out_path.exists() else {"clips": [c["id"] for c in meta], "tokens": {}}
    wanted = [] if args.only == "none" else args.only.split(",") if args.only else list(variants)
    for name in wanted:
        print(name, file=sys.stderr, flush=True)
        report["tokens"][name] = variants[name]()
        out_path.write_text(json.dumps(report))
    if args.driver and "mel" not in report and wanted:
        report["mel"] = mel_difference(args.driver, f16, clips)
    ref, ref220 = report["tokens"].get("torch-fp32"), report["tokens"].get("torch-fp32-cap220")
    summary = {}
    for name, toks in report["tokens"].items():
        row = {}
        if ref:
            row["same_as_torch_fp32"] = sum(a == b for a, b in zip(toks, ref))
            row["same_loop_cut"] = sum(loop_cut(a) == loop_cut(b) for a, b in zip(toks, ref))
            row["differs_on"] = [c for c, a, b in zip(report["clips"], toks, ref) if loop_cut(a) != loop_cut(b)]
        if ref220:
            row["same_as_torch_cap220"] = sum(a == b for a, b in zip(toks, ref220))
        summary[name] = row
    report["summary"] = summary
    out_path.write_text(json.dumps(report, indent=1))
    print(json.dumps({"summary": summary, "mel": report.get("mel")}, indent=1))


if __name__ == "__main__":
    main()
