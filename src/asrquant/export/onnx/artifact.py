"""Write an ONNX artifact directory: graphs with shared external weights (and the signed twins of
graphs with int8 GEMMs), config, tokenizer, manifest; atomically, and as a variant beside an
existing export (see :mod:`asrquant.runtime.onnx_layout`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import external_data_helper, helper, numpy_helper

from ...artifact import MANIFEST, atomic_dir, read_manifest, write_manifest
from ...errors import ArtifactError
from ...runtime.onnx_layout import (
    ALL_GRAPHS,
    DEFAULT_VARIANT,
    KIND,
    WEIGHTS_STEM,
    check_onnx_manifest,
    check_variant_name,
    graph_file,
    lowest_layout,
    signed_graph_file,
    signed_weights_file,
    weights_file,
)
from ...runtime.signed_graph import OP, to_signed

ALIGN = 4096  # page-aligned tensors: onnxruntime may map them instead of copying
MIN_EXTERNAL_BYTES = 1024  # smaller tensors (shapes, scalars) stay inside the graph
REWRITTEN = (MANIFEST, "config.json", "tokenizer.json")  # written by every export, variant or not


def content_sha256(proto: onnx.ModelProto) -> str:
    """Hash of a graph with its weights inline: equal for equal graphs whatever their file names."""
    return hashlib.sha256(proto.SerializeToString(deterministic=True)).hexdigest()


def _normalized(t: onnx.TensorProto) -> onnx.TensorProto:
    """The tensor with its data in ``raw_data`` (exporters may use the typed fields)."""
    if t.HasField("raw_data"):
        return t
    return numpy_helper.from_array(numpy_helper.to_array(t), t.name)


def constants_to_initializers(proto: onnx.ModelProto) -> None:
    """Large Constant nodes (the encoder's positional table, where it is not computed in the graph:
    see :mod:`.onnx_positions`) become initializers, so they are stored with the weights rather
    than inside the graph file."""
    g = proto.graph
    keep = []
    for node in g.node:
        value = node.attribute[0].t if node.op_type == "Constant" and node.attribute[0].name == "value" else None
        if value is not None and len(_normalized(value).raw_data) >= MIN_EXTERNAL_BYTES:
            t = _normalized(value)
            t.name = node.output[0]
            g.initializer.append(t)
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)


def float16_storage(proto: onnx.ModelProto) -> list[str]:
    """Store the large float32 weights as float16, each read through a Cast back to float32.

    onnxruntime folds the Casts when it loads the graph, so the graph computes in float32 as
    before, on weights rounded to float16; the file is half the size. Quantization scales
    (MatMulNBits inputs, packed weights' ``.scales``, the int8 GEMMs' ``.scale_int8``) are
    converted only where float16 holds them exactly, as it does the float16 scales of the
    built-in recipes, so quantized Linears stay bit-exact (onnxruntime prepacks a MatMulNBits
    whose scales come from a folded Cast as one whose scales are an initializer: same outputs,
    same speed). Returns the converted names."""
    constants_to_initializers(proto)  # large traced constants (a trained positional table) too
    g = proto.graph
    exact_only = {x for n in g.node if n.op_type == "MatMulNBits" for x in n.input[1:]}
    exact_only |= {t.name for t in g.initializer if t.name.endswith((".scales", ".scale_int8"))}
    converted, casts = [], []
    for t in g.initializer:
        if t.data_type != onnx.TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(t)
        if arr.nbytes < MIN_EXTERNAL_BYTES:
            continue
        half = arr.astype("float16")
        if t.name in exact_only and not np.array_equal(half.astype(np.float32), arr):
            continue
        name = t.name
        t.CopyFrom(numpy_helper.from_array(half, f"{name}.fp16"))
        casts.append(helper.make_node("Cast", [f"{name}.fp16"], [name], name=f"/{name}/Cast",
                                      to=onnx.TensorProto.FLOAT))
        converted.append(name)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return converted


def externalize(protos: list[onnx.ModelProto], directory: Path, location: str) -> None:
    """Move the large initializers of ``protos`` into ``directory/location``, each tensor name
    stored once: graphs that hold the same tensor reference the same bytes (offset, length).
    Tensors already stored elsewhere (a twin's, in its graph's file) stay where they are."""
    placed: dict[str, tuple[int, int, str]] = {}
    with open(directory / location, "wb") as f:
        for proto in protos:
            constants_to_initializers(proto)
            for t in proto.graph.initializer:
                if t.data_location == onnx.TensorProto.EXTERNAL:
                    continue
                t.CopyFrom(_normalized(t))
                raw = t.raw_data
                if len(raw) < MIN_EXTERNAL_BYTES:
                    continue
                digest = hashlib.sha256(raw).hexdigest()
                if t.name in placed:
                    offset, length, seen = placed[t.name]
                    if seen != digest:
                        raise ArtifactError(f"{location}: two graphs hold different tensors named {t.name!r}")
                else:
                    f.write(b"\0" * (-f.tell() % ALIGN))
                    offset, length = f.tell(), len(raw)
                    f.write(raw)
                    placed[t.name] = (offset, length, digest)
                external_data_helper.set_external_data(t, location, offset, length)
                t.ClearField("raw_data")
                t.data_location = onnx.TensorProto.EXTERNAL


def signed_twin(proto: onnx.ModelProto, directory: Path) -> onnx.ModelProto | None:
    """A copy of ``proto`` (its weights already in ``directory``'s files) with its int8 GEMM weights
    signed (:func:`asrquant.runtime.signed_graph.to_signed`), or None where the edit changes nothing.
    The copy is of the graph without its weights, and its unchanged tensors keep their references
    into the graph's weights file: a twin whose weights are load-time inputs (the ``encoder_weights``
    graph's) differs only in types and zero points, and adds no weights to the artifact."""
    if not any(n.op_type == OP for n in proto.graph.node):
        return None
    twin = onnx.ModelProto()
    twin.CopyFrom(proto)
    return twin if to_signed(twin, str(directory)) else None


def write_graphs(protos: dict[str, onnx.ModelProto], directory: Path,
                 variant: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Save graphs (a subset of ALL_GRAPHS) with their weights files, and the signed twin of each
    graph that has one; (graph -> file name, graph -> twin's file name)."""
    files, twins = {}, {}
    for stem in sorted({WEIGHTS_STEM[g] for g in protos}):
        members = [g for g in ALL_GRAPHS if g in protos and WEIGHTS_STEM[g] == stem]
        externalize([protos[g] for g in members], directory, weights_file(members[0], variant))
        signed = {g: t for g in members if (t := signed_twin(protos[g], directory)) is not None}
        # The int8 weights a twin stores itself (signed initializers: other bytes under the same
        # names) go to a file of the twins' own, not into the graphs' file: each runner then reads
        # only the file of the graph it opens, and a CPU without VNNI / AMX pays nothing for twins
        # but disk. The twins of graphs sharing one weights file share this one, as their graphs do.
        own = signed_weights_file(members[0], variant)
        externalize(list(signed.values()), directory, own)
        if not (directory / own).stat().st_size:
            (directory / own).unlink()  # the usual twin: nothing of its own to store
        for g in members:
            files[g] = graph_file(g, variant)
            (directory / files[g]).write_bytes(protos[g].SerializeToString())
            if g in signed:
                twins[g] = signed_graph_file(g, variant)
                (directory / twins[g]).write_bytes(signed[g].SerializeToString())
    return files, twins


def _link_or_copy(src: Path, dst: Path) -> None:
    # Files of an artifact are never modified in place, so a hard link is a safe copy.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _unchanged(hashes: dict[str, str], default: dict) -> set[str]:
    """Groups of graphs (by weights file) equal to the default variant's: not written again."""
    default_hashes = default.get("content_sha256", {})
    same = set()
    for stem in {WEIGHTS_STEM[g] for g in hashes}:
        members = [g for g in ALL_GRAPHS if WEIGHTS_STEM[g] == stem]
        if all(g in hashes and default_hashes.get(g) == hashes[g] for g in members):
            same.update(members)
    return same


def write_onnx_artifact(out: str | Path, protos: dict[str, onnx.ModelProto], *, config: dict, tokenizer_json: Path,
                        source: dict, variant: str | None = None, variant_info: dict | None = None,
                        family: str = "whisper") -> Path:
    """Write (or, with ``variant``, add to) the artifact at ``out`` atomically.

    The default variant makes a fresh directory. A named variant keeps what ``out`` holds (if it
    is an ONNX artifact of the same source) and adds its own files; graphs equal to the default
    variant's are not written again, the runner falls back to them."""
    out = Path(out)
    name = check_variant_name(variant) if variant not in (None, DEFAULT_VARIANT) else DEFAULT_VARIANT
    old = _existing(out, source, family) if name != DEFAULT_VARIANT else None
    hashes = {g: content_sha256(p) for g, p in protos.items()}
    with atomic_dir(out) as tmp:
        variants = {}
        if old is not None:
            for rel in old["files"]:
                # Only files this write leaves alone are linked: writing into a link would
                # change the old directory's file too.
                if rel not in REWRITTEN and not _belongs_to(rel, name):
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    _link_or_copy(out / rel, tmp / rel)
            variants = {k: v for k, v in old["variants"].items() if k != name}
        skip = _unchanged(hashes, variants.get(DEFAULT_VARIANT, {})) if name != DEFAULT_VARIANT else set()
        files, twins = write_graphs({g: p for g, p in protos.items() if g not in skip}, tmp,
                                    None if name == DEFAULT_VARIANT else name)
        files.update({g: graph_file(g) for g in skip})
        # An unchanged graph's twin is the default's. A default written before twins says nothing of
        # them: this variant then records none either, and the runner edits its graphs in memory.
        default_twins = variants.get(DEFAULT_VARIANT, {}).get("signed_graphs")
        known = not skip or default_twins is not None
        twins.update({g: default_twins[g] for g in skip if g in (default_twins or {})})
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        shutil.copyfile(tokenizer_json, tmp / "tokenizer.json")
        variants[name] = {**(variant_info or {}), "graphs": files, **({"signed_graphs": twins} if known else {}),
                          "content_sha256": hashes}
        encoder = protos.get("encoder")
        layout = lowest_layout([o.name for o in encoder.graph.output] if encoder is not None else [])
        if old is not None:  # the variants kept from before may need a later layout than this one
            layout = max(layout, old.get("layout", layout))
        write_manifest(tmp, kind=KIND, layout=layout, family=family, source=source,
                       default_variant=DEFAULT_VARIANT, variants=variants)
    return out


def _belongs_to(rel: str, variant: str) -> bool:
    """Files written by ``variant`` (replaced when it is exported again), its twins' included."""
    return any(rel in (graph_file(g, variant), weights_file(g, variant), signed_graph_file(g, variant),
                       signed_weights_file(g, variant)) for g in ALL_GRAPHS)


def _existing(out: Path, source: dict, family: str) -> dict | None:
    if not out.exists():
        return None
    manifest = read_manifest(out)
    check_onnx_manifest(manifest, out / MANIFEST, "export the default variant again before adding one", family)
    if manifest.get("source", {}).get("sha256") != source.get("sha256"):
        raise ArtifactError(f"{out / MANIFEST}: exported from another model "
                            f"({manifest.get('source', {}).get('model')}); "
                            "a variant must come from the same source")
    return manifest
