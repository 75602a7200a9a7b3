"""The file layout of an asrquant ONNX artifact, shared by the writer and the torch-free runner.

    manifest.json            kind "onnx"; source model and hash; per variant: recipe, graph files,
                             the scheme of every Linear; every file with its sha256
    config.json              dimensions, generation settings, cache layout
    tokenizer.json
    encoder.onnx             + encoder.onnx.data   mel -> cross-attention keys/values, every layer
    decoder_prefill.onnx     prompt -> last logits and the prompt's self-attention keys/values
    decoder_step.onnx        one token + cache buffers -> logits and the token's keys/values
    decoder.onnx.data        the decoder weights, stored once, referenced by both decoder graphs
    encoder_weights.onnx     optional (``--compute int8`` of a 4- or 8-bit recipe): no inputs; computes
                             the int8 weights the encoder graph then takes as inputs, from codes
                             stored at the recipe's bits (see asrquant.export.onnx.int8_matmul)

    encoder+s8.onnx          optional (a graph with ``--compute int8`` GEMMs): its signed twin, the int8
                             weights read as int8 with zero point 0, which a CPU with VNNI or AMX runs
                             (see asrquant.runtime.int8_weights); it reads its graph's weights file,
                             and ``encoder+s8.onnx.data`` holds only the tensors the edit changed (int8
                             weights stored in the graph), where there are any

A variant (say ``int4``) lives beside the default files with the variant in the name
(``decoder_step.int4.onnx``, ``decoder.int4.onnx.data``, ``encoder.int4+s8.onnx``). A graph the
variant leaves unchanged is not written again: the runner falls back to the unsuffixed file, the
convention of the qwen3-asr-onnx exports. The manifest's variant entry records its graphs'
files ("graphs") and its twins ("signed_graphs"); a runner that does not know twins ignores them.
"""

from __future__ import annotations

from pathlib import Path

from ..artifact import MANIFEST, verify
from ..errors import ArtifactError
from ..families import ONNX_KIND

KIND = ONNX_KIND
# The graphs' interface (inputs, outputs, cache layout) the runner expects. Bump it with any
# change to that interface: a runner refuses an artifact of another layout instead of failing
# inside onnxruntime. Layout 2 added the optional encoder_weights graph; layout 1 artifacts are
# layout 2 artifacts without it, so both are read. Layout 3 added int8 cross-attention keys (the
# encoder's uint8 cross_k and its cross_k_scale output, the decoders' inputs to match). An artifact
# is written with the lowest layout that describes it, so a runner of layout 2 still reads one
# without int8 keys.
LAYOUT_VERSION = 3
READABLE_LAYOUTS = (1, 2, 3)
INT8_CROSS_KEYS = "cross_k_scale"  # the encoder output whose presence makes an artifact layout 3


def lowest_layout(encoder_outputs: list[str]) -> int:
    """The lowest layout whose runner reads an encoder graph with these outputs."""
    return 3 if INT8_CROSS_KEYS in encoder_outputs else 2


def check_onnx_manifest(manifest: dict, path: Path, remedy: str, family: str | None = None) -> None:
    """Refuse a manifest that is not an ONNX export of this layout (and, given ``family``, of
    that model family); ``remedy`` says what to do."""
    if manifest.get("kind") != KIND:
        raise ArtifactError(f"{path}: kind {manifest.get('kind')!r}, not an ONNX export")
    if family is not None and manifest.get("family") != family:
        raise ArtifactError(f"{path}: an ONNX export of a {manifest.get('family')!r} model; "
                            f"this reads {family!r} exports")
    if manifest.get("layout") not in READABLE_LAYOUTS:
        raise ArtifactError(f"{path}: ONNX layout {manifest.get('layout')!r}, this version reads layouts "
                            f"{', '.join(map(str, READABLE_LAYOUTS))}; {remedy}")
DEFAULT_VARIANT = "default"
GRAPHS = ("encoder", "decoder_prefill", "decoder_step")
# Optional graph -> the graph it serves: written only by some variants, resolved with that graph.
ENCODER_WEIGHTS = "encoder_weights"
OPTIONAL_GRAPHS = {ENCODER_WEIGHTS: "encoder"}
ALL_GRAPHS = GRAPHS + tuple(OPTIONAL_GRAPHS)
# Graphs that share one external weights file: both decoder graphs read the same tensors.
WEIGHTS_STEM = {"encoder": "encoder", "decoder_prefill": "decoder", "decoder_step": "decoder",
                ENCODER_WEIGHTS: ENCODER_WEIGHTS}


def _suffix(variant: str | None) -> str:
    return "" if variant in (None, DEFAULT_VARIANT) else f".{variant}"


def graph_file(graph: str, variant: str | None = None) -> str:
    return f"{graph}{_suffix(variant)}.onnx"


def weights_file(graph: str, variant: str | None = None) -> str:
    return f"{WEIGHTS_STEM[graph]}{_suffix(variant)}.onnx.data"


# A twin's mark: '+' is not allowed in a variant name, so no variant's file is ever named like a twin.
SIGNED = "+s8"


def signed_graph_file(graph: str, variant: str | None = None) -> str:
    return f"{graph}{_suffix(variant)}{SIGNED}.onnx"


def signed_weights_file(graph: str, variant: str | None = None) -> str:
    return f"{WEIGHTS_STEM[graph]}{_suffix(variant)}{SIGNED}.onnx.data"


def runtime_bytes(files: dict[str, str], variant: str, listed: dict) -> int:
    """Bytes of the graphs a runner opens (graph -> file, as resolved for ``variant``) and of the
    weights files they read, by the layout's names: no graph is parsed, so no ``onnx`` import."""
    used = set(files.values())
    for g, f in files.items():
        used.add(weights_file(g, None if f == graph_file(g) else variant))
    return sum(listed[f]["bytes"] for f in used if f in listed)


def check_variant_name(variant: str) -> str:
    if not variant or not all(c.isalnum() or c in "-_" for c in variant):
        raise ValueError(f"variant name {variant!r}: use letters, digits, '-' and '_' only")
    return variant


def resolve_graph_files(directory: Path, variant: str | None) -> dict[str, str]:
    """Graph -> file name for ``variant``: the suffixed file where it exists, else the default.
    An optional graph comes from where the graph it serves came from, and only if it is there."""
    out = {}
    for g in GRAPHS:
        own = graph_file(g, variant)
        out[g] = own if (directory / own).is_file() else graph_file(g)
    for g, owner in OPTIONAL_GRAPHS.items():
        f = graph_file(g, variant) if out[owner] == graph_file(owner, variant) else graph_file(g)
        if (directory / f).is_file():
            out[g] = f
    return out


def recorded_graph_files(entry: dict) -> dict[str, str] | None:
    """Graph -> file as the writer recorded it for a variant (its "graphs"), where it names every
    graph; else None (the file-name fallback decides). The record is what the writer did: a
    variant whose encoder changed but whose encoder_weights graph equals the default's reads the
    default's, which the file-name rule cannot tell."""
    graphs = entry.get("graphs")
    if not isinstance(graphs, dict) or not set(GRAPHS) <= set(graphs) or not set(graphs) <= set(ALL_GRAPHS) \
            or not all(isinstance(f, str) for f in graphs.values()):
        return None
    return dict(graphs)


def variant_graph_files(directory: Path, manifest: dict, variant: str | None,
                        manifest_name: str) -> tuple[str, dict[str, str]]:
    """(variant name, graph -> file) of a verified artifact: ``variant`` or the default one, each
    graph resolved with fallback and required to be listed in the manifest (the runners' check)."""
    name = variant or manifest.get("default_variant", "default")
    variants = manifest.get("variants", {})
    if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
        raise ArtifactError(f"{directory / manifest_name}: \"variants\" must map names to tables")
    if name not in variants:
        raise ArtifactError(f"{directory / manifest_name}: no variant {name!r} (has: {', '.join(sorted(variants))})")
    files = recorded_graph_files(variants[name]) or resolve_graph_files(directory, name)
    for g, f in files.items():
        if f not in manifest["files"]:
            raise ArtifactError(f"{directory / f}: graph {g} of variant {name!r} is not listed in {manifest_name}")
    return name, files


def signed_graph_files(directory: Path, manifest: dict, variant: str, files: dict[str, str]) -> dict[str, str]:
    """Graph -> the file a runner opens where int8 weights run signed, for ``variant`` of a verified
    artifact whose graphs are ``files``: the graph's signed twin where the writer recorded one (its
    "signed_graphs"), else the graph's own file (nothing in it to sign). {} for a variant recorded
    without twins (an artifact written before them): the runner edits its graphs in memory. A twin
    must be listed in the manifest, so :func:`asrquant.artifact.verify` checked its sha256."""
    entry = manifest["variants"][variant]
    if "signed_graphs" not in entry:
        return {}
    twins = entry["signed_graphs"]
    if not (isinstance(twins, dict) and set(twins) <= set(files) and all(isinstance(f, str) for f in twins.values())):
        raise ArtifactError(f"{directory / MANIFEST}: \"signed_graphs\" of variant {variant!r} must map its graphs "
                            "to files")
    for g, f in twins.items():
        if f not in manifest["files"]:
            raise ArtifactError(f"{directory / f}: signed graph {g} of variant {variant!r} is not listed in {MANIFEST}")
    return {g: twins.get(g, f) for g, f in files.items()}


def open_variant(directory: Path, variant: str | None, family: str) -> tuple[dict, str, dict[str, str]]:
    """What every family's runner checks before it loads a graph: (manifest, variant name, graph ->
    file) of an export of ``family`` whose every file matches its manifest."""
    manifest = verify(directory)
    check_onnx_manifest(manifest, directory / MANIFEST, "export the model again", family=family)
    name, files = variant_graph_files(directory, manifest, variant, MANIFEST)
    return manifest, name, files
