"""compressed-tensors checkpoints for vLLM: ``pack-quantized`` (W4A16 / W8A16, group or channel,
symmetric or not), ``nvfp4-pack-quantized`` and ``mxfp4-pack-quantized``.

The directory is a Hugging Face checkpoint of the family's model class (``config.json`` with the
``quantization_config`` vLLM reads, ``model.safetensors``, tokenizer and processor files); each
quantized Linear holds ``weight_packed``, ``weight_scale``, ``weight_shape`` (int) or
``weight_global_scale`` (NVFP4), ``weight_zero_point`` (asymmetric int).

The library does the packing and chooses the format: each Linear's state dict goes through the
compressor that ``infer_module_format`` picks for its scheme, and the scheme is the library's
own ``QuantizationArgs`` (:meth:`QuantScheme.to_compressed_tensors_args`). Its compressors
re-derive codes from a float weight, so the weight given is our dequantized one and the codes
that come out are checked against ours.

Numbers, and where they stop being ours bit for bit:
- int: our unsigned code c and zero point z become the library's signed ``c - 2^(b-1)`` and
  ``z - 2^(b-1)``. Scales are stored in the scheme's ``scale_dtype`` (the library's own
  ``QuantizationArgs.scale_dtype``, written in the config): float32, or float16/bfloat16 values
  that our scheme already rounded to, so they are ours exactly either way. The library
  decompresses ``(q - zp) * scale`` in the scales' dtype: with float32 scales (float32 copies of
  half-precision ones included) that is ours bit for bit; with half-precision tensors as given, it
  rounds each weight to that dtype. vLLM casts the scales to the model dtype when it loads them.
- nvfp4: codes and E4M3 scales are ours exactly. The per-tensor scale is a divisor here
  (``weight_global_scale``), a multiplier in ours; the stored divisor is chosen so that its
  reciprocal, which vLLM computes, is our multiplier exactly. The library's own decompression
  divides, which can differ from our product in the last float32 bit.
- AWQ input scales not folded into a LayerNorm: the format has no place for them; refused.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from ..artifact import atomic_dir, write_manifest
from ..errors import AsrQuantError
from ..quant.linear import linear_names
from ..quant.qtensor import QuantizedWeight, dequantize, scale_values
from .hf_layout import (
    WEIGHTS_FILE,
    FamilyInfo,
    float_tensors,
    manifest_fields,
    refuse_input_scale,
    require_quantized,
    write_config,
    write_support_files,
)

FORMAT = "compressed-tensors"


def _library():
    try:
        import compressed_tensors  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        raise AsrQuantError("--format compressed-tensors needs the library: pip install 'asrquant[formats]'") from None


def ct_scheme(qw: QuantizedWeight):
    """The library's QuantizationScheme for our scheme (no targets yet), with the format its
    registry picks for a Linear."""
    from compressed_tensors.compressors.format import infer_module_format
    from compressed_tensors.quantization import QuantizationScheme

    scheme = QuantizationScheme(targets=[], weights=qw.scheme.to_compressed_tensors_args())
    scheme.format = infer_module_format(nn.Linear, scheme).value
    return scheme


def _check_representable(name: str, qw: QuantizedWeight) -> None:
    g = qw.group_len
    if qw.scheme.group_size != -1 and qw.in_features % g:
        raise AsrQuantError(f"{name}: {qw.scheme.name} on {qw.in_features} inputs leaves a short last group; "
                            f"compressed-tensors needs in_features to be a multiple of the group size {g}")


def global_divisor(multiplier: Tensor) -> Tensor:
    """float32 [1] ``d`` with ``1 / d == multiplier`` exactly when such a float32 exists (the nearest
    reciprocal otherwise): vLLM inverts ``weight_global_scale`` to get the multiplier back."""
    m = multiplier.reshape(1).float()
    d = 1.0 / m
    for direction in (float("inf"), 0.0):
        cand = d.clone()
        for _ in range(4):
            if torch.equal(1.0 / cand, m):
                return cand
            cand = torch.nextafter(cand, torch.tensor([direction]))
    return d


def uncompressed_state(qw: QuantizedWeight) -> dict[str, Tensor]:
    """The per-module state dict the library's compressors take: float weight and its qparams."""
    s = qw.scheme
    sd = {"weight": dequantize(qw)}
    if s.format == "int":
        sd["weight_scale"] = qw.scales.to(s.scale_torch_dtype)  # exact: the scheme rounded them already
        if not s.symmetric:
            sd["weight_zero_point"] = (qw.zero_points.to(torch.int16) - 2 ** (s.bits - 1)).to(torch.int8)
    elif s.format == "nvfp4":
        sd["weight_scale"] = qw.scales.view(torch.float8_e4m3fn).float()
        sd["weight_global_scale"] = global_divisor(qw.global_scale)
    else:  # mxfp4: the float power of two its compressor turns back into an E8M0 exponent
        sd["weight_scale"] = scale_values(s, qw.scales)
    return sd


def compress_linear(name: str, qw: QuantizedWeight, scheme) -> dict[str, Tensor]:
    from compressed_tensors.compressors import BaseCompressor

    _check_representable(name, qw)
    refuse_input_scale(name, qw, FORMAT)
    compressor = BaseCompressor.get_value_from_registry(scheme.format)
    out = compressor.compress(uncompressed_state(qw), scheme)
    _check_codes(name, qw, out, scheme)
    return {k: v.contiguous() for k, v in out.items()}


def _check_codes(name: str, qw: QuantizedWeight, packed: dict[str, Tensor], scheme) -> None:
    """The library re-derived the codes from our float weight: they must be ours."""
    s = qw.scheme
    if s.format == "int":
        from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32

        q = unpack_from_int32(packed["weight_packed"], s.bits, torch.Size(qw.shape))
        codes = (q.to(torch.int16) + 2 ** (s.bits - 1)).to(torch.uint8)
    else:
        b = packed["weight_packed"]
        codes = torch.stack([b & 0xF, b >> 4], dim=-1).reshape(qw.shape)
    if not torch.equal(codes, qw.codes):
        bad = int((codes != qw.codes).sum())
        raise RuntimeError(f"{name}: compressed-tensors' {scheme.format} compressor changed {bad} codes")
    if s.format != "int" and not torch.equal(packed["weight_scale"].view(torch.uint8), qw.scales):
        raise RuntimeError(f"{name}: compressed-tensors' {scheme.format} compressor changed the block scales")


def quantization_config(schemes: list, ignore: list[str]) -> dict:
    """config.json's ``quantization_config``, laid out as the library's ModelCompressor writes it."""
    import compressed_tensors
    from compressed_tensors.quantization import QuantizationConfig

    formats = {s.format for s in schemes}
    qc = QuantizationConfig(
        config_groups={f"group_{i}": scheme for i, scheme in enumerate(schemes)},
        format=formats.pop() if len(formats) == 1 else "mixed-precision",
        quantization_status="compressed",
        ignore=ignore,
    )
    return {
        "version": compressed_tensors.__version__,
        "quant_method": "compressed-tensors",
        "sparsity_config": {},
        "transform_config": {},
        **qc.model_dump(exclude=["quant_method"]),
    }


def write_compressed_tensors(model: nn.Module, family: FamilyInfo, qweights: dict[str, QuantizedWeight],
                             out_dir: str | Path, recipe=None) -> Path:
    """Write the compressed-tensors checkpoint of ``model`` to ``out_dir`` (atomically)."""
    _library()
    require_quantized(qweights, FORMAT)
    names = {n: family.hf_module(n) for n in linear_names(model)}
    schemes = {}  # our scheme name -> the library's scheme, one config group each
    tensors = float_tensors(model, family, qweights)
    for name, qw in qweights.items():
        if qw.scheme.name not in schemes:
            schemes[qw.scheme.name] = ct_scheme(qw)
        schemes[qw.scheme.name].targets.append(names[name])
        for k, v in compress_linear(name, qw, schemes[qw.scheme.name]).items():
            tensors[f"{names[name]}.{k}"] = v
    ignore = [names[n] for n in names if n not in qweights] + list(family.extra_float_linears)
    config = dict(family.config)
    config["quantization_config"] = quantization_config(list(schemes.values()), ignore)
    with atomic_dir(out_dir) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        write_config(tmp, config)
        write_support_files(family, tmp)
        write_manifest(tmp, **manifest_fields(FORMAT, family, qweights, recipe, names))
    return Path(out_dir)
