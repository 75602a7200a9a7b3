"""Experiment: the encoder's attention scores (q k^T) as integer GEMMs, by editing an exported encoder.

Each chunk's queries are quantized to int8 with one scale per chunk (so the GEMM's scalar scale
holds it), keys with one scale per tensor (``--keys tensor``) or per key (``--keys row``, then a
Mul over the scores applies it), and ``MatMulIntegerToFloat`` (u8 x s8: this is for CPUs with
VNNI) replaces the float product; softmax and the probabilities' product stay float32. Writes the
edited encoders next to nothing of the artifact (``--work``), then, against the artifact as it
ships, interleaved: the encoder's output difference (relative L2, vitw8), one 30 s encoder call
(median wall seconds), and whole transcriptions of vitw8 + dev (summed seconds, clips with the
same tokens).

    python benchmarks/onnx-speed/int8_scores.py ARTIFACT --work runs/int8-scores --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from timing import speed_clips

from asrquant.cpu import describe_cpu
from asrquant.features import log_mel
from asrquant.models.whisper.onnx_session import _load, open_onnx_artifact

MS = "com.microsoft"


def _const(name, value, dtype):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(value, dtype), name))


def _quantize_keys(kf: str, mode: str) -> tuple[list, str, str]:
    """Nodes quantizing the key projection's output ``kf`` [B, T, D] to int8; its scale's name."""
    kq = f"{kf}/k_s8"
    if mode == "tensor":
        return [helper.make_node("Abs", [kf], [f"{kf}/abs"]),
                helper.make_node("ReduceMax", [f"{kf}/abs"], [f"{kf}/amax"], keepdims=0),
                helper.make_node("Div", [f"{kf}/amax", "att/qmax"], [f"{kf}/s"]),
                helper.make_node("QuantizeLinear", [kf, f"{kf}/s", "att/zs8"], [kq])], kq, f"{kf}/s"
    return [helper.make_node("Abs", [kf], [f"{kf}/abs"]),
            helper.make_node("ReduceMax", [f"{kf}/abs"], [f"{kf}/amax"], axes=[-1], keepdims=1),
            helper.make_node("Max", [f"{kf}/amax", "att/tiny"], [f"{kf}/amaxp"]),
            helper.make_node("Div", [f"{kf}/amaxp", "att/qmax"], [f"{kf}/s"]),
            helper.make_node("Div", [kf, f"{kf}/s"], [f"{kf}/r"]),
            helper.make_node("QuantizeLinear", [f"{kf}/r", "att/one", "att/zs8"], [kq]),
            helper.make_node("Transpose", [f"{kf}/s"], [f"{kf}/sT"], perm=[0, 2, 1]),  # [B, T, 1] -> [B, 1, 1, T]
            _const(f"{kf}/ax1", [1], np.int64),
            helper.make_node("Unsqueeze", [f"{kf}/sT", f"{kf}/ax1"], [f"{kf}/s4"])], kq, f"{kf}/s4"


def edit(src: Path, dst: Path, keys: str) -> None:
    """The encoder graph at ``src`` with every Softmax's input (Mul(q, 1/sqrt(dh)) @ k^T) made int8."""
    m = onnx.load(src)
    g = m.graph
    prod = {o: n for n in g.node for o in n.output}
    before, drop, done = {}, set(), {}
    for i, sm in enumerate(n for n in g.node if n.op_type == "Softmax"):
        mm = prod[sm.input[0]]
        mul = prod[mm.input[0]]
        assert mm.op_type == "MatMul" and mul.op_type == "Mul", "not the traced attention of asrquant's encoder"
        alpha = float(numpy_helper.to_array(prod[mul.input[1]].attribute[0].t))
        tr = prod[mm.input[1]]  # k^T = Transpose(Reshape(key projection))
        rs = prod[tr.input[0]]
        nodes = []
        if mm.input[1] not in done:
            q_nodes, kq, ks = _quantize_keys(rs.input[0], keys)
            perm = list(tr.attribute[0].ints)
            nodes += q_nodes + [helper.make_node("Reshape", [kq, rs.input[1]], [f"{kq}/r"]),
                                helper.make_node("Transpose", [f"{kq}/r"], [f"{kq}/t"], perm=perm)]
            done[mm.input[1]] = (f"{kq}/t", ks)
        k8, ks = done[mm.input[1]]
        p, qc = f"att{i}", mul.input[0]
        nodes += [_const(f"{p}/alpha", alpha, np.float32),
                  helper.make_node("Abs", [qc], [f"{p}/qabs"]),
                  helper.make_node("ReduceMax", [f"{p}/qabs"], [f"{p}/qamax"], keepdims=0),
                  helper.make_node("Div", [f"{p}/qamax", "att/qmax"], [f"{p}/qs"]),
                  helper.make_node("QuantizeLinear", [qc, f"{p}/qs", "att/zu8"], [f"{p}/qu8"]),
                  helper.make_node("Mul", [f"{p}/qs", f"{p}/alpha"], [f"{p}/qsa"])]
        if keys == "tensor":
            nodes += [helper.make_node("Mul", [f"{p}/qsa", ks], [f"{p}/sc"]),
                      helper.make_node("MatMulIntegerToFloat", [f"{p}/qu8", k8, f"{p}/sc", "att/one", "att/zu8",
                                                                "att/zs8"], [sm.input[0]], domain=MS)]
        else:
            nodes += [helper.make_node("MatMulIntegerToFloat", [f"{p}/qu8", k8, f"{p}/qsa", "att/one", "att/zu8",
                                                                "att/zs8"], [f"{p}/raw"], domain=MS),
                      helper.make_node("Mul", [f"{p}/raw", ks], [sm.input[0]])]
        drop |= {mm.name, mul.name}
        before.setdefault(sm.name, []).extend(nodes)
    consts = [_const("att/zu8", 128, np.uint8), _const("att/zs8", 0, np.int8), _const("att/one", 1.0, np.float32),
              _const("att/qmax", 127.0, np.float32), _const("att/tiny", np.finfo(np.float32).tiny, np.float32)]
    nodes = consts + [x for n in g.node if n.name not in drop for x in before.get(n.name, []) + [n]]
    del g.node[:]
    g.node.extend(nodes)
    dst.parent.mkdir(parents=True, exist_ok=True)
    for f in (dst, dst.with_name(dst.name + ".data")):
        f.unlink(missing_ok=True)
    onnx.save(m, dst, save_as_external_data=True, location=dst.name + ".data")


def _rel(a, b) -> float:
    k = np.linalg.norm(a.k - b.k) / np.linalg.norm(b.k)
    return float((k + np.linalg.norm(a.v - b.v) / np.linalg.norm(b.v)) / 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifact")
    ap.add_argument("--work", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--json")
    a = ap.parse_args()
    variants = {"as shipped": None}
    for keys in ("tensor", "row"):
        dst = Path(a.work) / f"encoder-keys-{keys}.onnx"
        edit(Path(a.artifact) / "encoder.onnx", dst, keys)
        variants[f"int8 scores, keys per {keys}"] = dst
    trs = {}
    for v, path in variants.items():
        tr, _ = open_onnx_artifact(a.artifact, a.threads)
        if path is not None:
            tr.session.encoder = _load(path, a.threads, mem_pattern=False)
        trs[v] = tr
    clips = speed_clips()
    base = "as shipped"
    error = {v: [] for v in trs if v != base}
    for _, audio in clips[:8]:
        mel = log_mel(audio)
        outs = {v: tr.session.encode(mel) for v, tr in trs.items()}
        for v in error:
            error[v].append(_rel(outs[v], outs[base]))
    mel = log_mel(clips[0][1])
    enc = {v: [] for v in trs}
    for _ in range(a.repeat):
        for v, tr in trs.items():
            t = time.perf_counter()
            tr.session.encode(mel)
            enc[v].append(time.perf_counter() - t)
    total, same = dict.fromkeys(trs, 0.0), dict.fromkeys(trs, 0)
    for _, audio in clips:
        tokens = {}
        for v, tr in trs.items():
            t = time.perf_counter()
            tokens[v] = tr.transcribe(audio).tokens
            total[v] += time.perf_counter() - t
        for v in trs:
            same[v] += tokens[v] == tokens[base]
    report = {"cpu": describe_cpu(), "artifact": a.artifact, "threads": a.threads, "clips": len(clips),
              "encoder_rel_l2_vs_shipped_vitw8_median": {v: round(statistics.median(e), 4) for v, e in error.items()},
              "encoder_30s_median_s": {v: round(statistics.median(t), 4) for v, t in enc.items()},
              "transcription_s": {v: round(t, 2) for v, t in total.items()},
              "transcription_ratio": {v: round(t / total[base], 3) for v, t in total.items()},
              "same_tokens": same}
    print(json.dumps(report, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
