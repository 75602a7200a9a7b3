"""Recipes as data: which Linear gets which scheme and algorithm, and how much calibration.

A recipe is a TOML file::

    name = "mixed-8attn-4mlp"            # optional, defaults to the file name
    description = "..."
    ignore = ["decoder.token_embedding", "*lm_head*", "*embed*"]   # optional; replaces this default

    [calibration]
    clips = 32                           # calibration clips the algorithms want (0: none)

    [[rules]]                            # the first rule that matches a module wins
    kind = "attention"                   # optional: attention | cross_attention | mlp | encoder | decoder,
                                         #   or a list of them, ALL of which must hold ("decoder" + "mlp")
    match = "*"                          # optional: fnmatch pattern(s) on the module name, ANY may match
    format = "int"                       # int | nvfp4 | mxfp4
    bits = 8                             # 2..8 (int)
    group_size = 64                      # -1 = one scale per output channel
    symmetric = false
    scale_dtype = "float16"              # int: float32 (default) | float16 | bfloat16, the scales' storage
    algorithm = "rtn"                    # rtn | gptq | awq | awq-lite, or another in quant.algorithms
    options = { }                        # the algorithm's options (its ``options`` in quant.algorithms)
    refine = "dwq"                       # optional: a learned refinement of that start (rtn or gptq), trained
                                         #   on the calibration clips block by block or end to end
    refine_options = { level = "block" } # the refinement's options

    [embedding]                          # optional: quantize the token embedding table(s) too
    match = "*"                          # optional: fnmatch pattern(s) on the nn.Embedding's name
    format = "int"                       # as in a rule
    bits = 8
    group_size = -1
    algorithm = "rtn"                    # rtn | gptq (on the inputs of the tied output projection)
    options = { }                        # gptq's options
    refine = "dwq"                       # optional: its scales learned end to end with the Linears'
    refine_options = { level = "e2e" }   #   (level "e2e" only; see quant/refine.py)

Rules target ``nn.Linear`` modules; a module matched by ``ignore`` or by no rule stays float.
Embedding tables stay float unless the recipe has an ``[embedding]`` table (``ignore`` does not
apply to it). A tied table is also the output projection (Whisper computes its logits with it),
the largest matrix of a small model: 106 MB of whisper-base's 290 MB in float32. The logits are
where its rounding costs: whisper-base's table at 4 bits in groups of 64, every Linear float,
teacher forced on 64 held-out calibration-split clips, moved the next-token distribution by a KL
of 0.0013 per position as lookups alone, 0.043 as logits weights alone. Round to nearest weighs
every column alike; ``algorithm = "gptq"`` weighs them by the final hidden states that multiply
the table: KL of both uses 0.044 -> 0.0097 with damp 0.05 (0.012 with 0.01), argmax changed at
33 -> 23 of 1092 positions (benchmarks/quantization/embedding-sensitivity.py).
The table is rounded to nearest before calibration either way, so the decoder blocks are
calibrated on rounded lookups; GPTQ replaces it once the quantized decoder's final hidden states
are known (the adapter's last block, see calibrate).

Kinds are found from module names by :func:`module_kinds`, which knows both families' naming
(Whisper: ``encoder.blocks.N.attn.query``, ``decoder.blocks.N.mlp.fc1``; Qwen3-ASR:
``[thinker.]audio_tower.layers.N.self_attn.q_proj``, ``[thinker.]model.layers.N.mlp.gate_proj``).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

from ..errors import AsrQuantError
from .algorithms import algorithm_names, get_algorithm, refinement_names, start_names
from .scheme import FORMATS, QuantScheme

DEFAULT_IGNORE = ("decoder.token_embedding", "*lm_head*", "*embed*")
KINDS = ("attention", "cross_attention", "mlp", "encoder", "decoder")
BUILTIN_DIR = "recipes"


def _table_algorithms() -> tuple[str, ...]:
    """The algorithms an ``[embedding]`` table may name."""
    return tuple(n for n in algorithm_names() if get_algorithm(n).quantizes_tables)


# ALGORITHMS, EMBEDDING_ALGORITHMS and ALGORITHM_OPTIONS, computed from the registry when read:
# computing them imports every algorithm module, and with them torch.
_REGISTRY_VIEWS = {
    "ALGORITHMS": algorithm_names,
    "EMBEDDING_ALGORITHMS": _table_algorithms,
    "ALGORITHM_OPTIONS": lambda: {n: dict(get_algorithm(n).options) for n in algorithm_names()},
}


def __getattr__(name: str):
    if name in _REGISTRY_VIEWS:
        return _REGISTRY_VIEWS[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ATTN_PARTS = {"attn", "self_attn", "cross_attn", "encoder_attn", "attention", "self_attention"}
_CROSS_PARTS = {"cross_attn", "encoder_attn"}
_ATTN_LEAVES = {"q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "qkv_proj", "query", "key", "value"}
_MLP_PARTS = {"mlp", "feed_forward", "ffn"}
_MLP_LEAVES = {"fc1", "fc2", "gate_proj", "up_proj", "down_proj"}
_ENCODER_PARTS = {"audio_tower", "audio_encoder", "audio_model"}
_DECODER_PARTS = {"text_model", "language_model", "lm_head"}


def module_kinds(name: str) -> frozenset[str]:
    """Kinds of a module, from its dotted name, for both model families."""
    parts = name.split(".")
    if parts and parts[0] == "thinker":
        parts = parts[1:]
    kinds = set()
    if parts[:1] == ["encoder"] or _ENCODER_PARTS & set(parts):
        kinds.add("encoder")
    elif parts[:1] in (["decoder"], ["model"], ["layers"]) or _DECODER_PARTS & set(parts):
        kinds.add("decoder")
    inner = set(parts[:-1])
    leaf = parts[-1] if parts else ""
    if _ATTN_PARTS & inner or leaf in _ATTN_LEAVES:
        kinds.add("attention")
        if _CROSS_PARTS & inner:
            kinds.add("cross_attention")
    elif _MLP_PARTS & inner or leaf in _MLP_LEAVES:
        kinds.add("mlp")
    return frozenset(kinds)


@dataclass(frozen=True)
class Rule:
    scheme: QuantScheme
    algorithm: str = "rtn"
    match: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    refine: str | None = None  # a Refinement of the algorithm's result
    refine_options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def matches(self, name: str) -> bool:
        if self.match and not any(fnmatch.fnmatchcase(name, p) for p in self.match):
            return False
        return not self.kinds or set(self.kinds) <= module_kinds(name)

    @property
    def needs_stats(self) -> bool:
        return get_algorithm(self.algorithm).needs_stats

    def option(self, key: str):
        return self.options.get(key, get_algorithm(self.algorithm).options[key][1])

    def all_options(self) -> dict:
        return {k: self.option(k) for k in get_algorithm(self.algorithm).options}

    def all_refine_options(self) -> dict:
        if self.refine is None:
            return {}
        spec = get_algorithm(self.refine).options
        return {k: self.refine_options.get(k, spec[k][1]) for k in spec}

    def refine_levels(self) -> tuple[str, ...]:
        """Where this rule's refinement trains (block, e2e), or () without one."""
        return () if self.refine is None else get_algorithm(self.refine).level(self.all_refine_options())

    def to_dict(self) -> dict:
        refine = {"refine": self.refine, "refine_options": self.all_refine_options()} if self.refine else {}
        return {
            "match": list(self.match),
            "kind": list(self.kinds),
            **self.scheme.to_dict(),
            "algorithm": self.algorithm,
            "options": self.all_options(),
            **refine,
        }


@dataclass(frozen=True)
class Recipe:
    name: str
    rules: tuple[Rule, ...]
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    clips: int = 0
    description: str = ""
    source: str = ""
    embedding: Rule | None = None  # the [embedding] table (an algorithm that quantizes tables)

    def embedding_rule_for(self, name: str) -> Rule | None:
        """The rule of embedding table ``name`` (an nn.Embedding), or None (stays float)."""
        e = self.embedding
        return e if e is not None and (not e.match or any(fnmatch.fnmatchcase(name, p) for p in e.match)) else None

    def is_ignored(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.ignore)

    def rule_for(self, name: str) -> Rule | None:
        """The first rule matching module ``name``, or None (ignored or unmatched: keep float)."""
        if self.is_ignored(name):
            return None
        return next((r for r in self.rules if r.matches(name)), None)

    @property
    def needs_calibration(self) -> bool:
        return any(r.needs_stats or r.refine for r in self.rules + ((self.embedding,) if self.embedding else ()))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "ignore": list(self.ignore),
            "calibration": {"clips": self.clips},
            "rules": [r.to_dict() for r in self.rules],
            **({"embedding": _embedding_dict(self.embedding)} if self.embedding is not None else {}),
        }


def _embedding_dict(rule: Rule) -> dict:
    d = rule.to_dict()
    d.pop("kind")
    return d


def builtin_recipes() -> list[str]:
    d = resources.files(__package__) / BUILTIN_DIR
    return sorted(p.name[: -len(".toml")] for p in d.iterdir() if p.name.endswith(".toml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A built-in recipe by name, or a recipe .toml file."""
    spec = str(name_or_path)
    if spec in builtin_recipes():
        res = resources.files(__package__) / BUILTIN_DIR / f"{spec}.toml"
        return parse_recipe(res.read_text(encoding="utf-8"), source=f"builtin:{spec}", default_name=spec)
    path = Path(spec)
    if not path.is_file():
        raise AsrQuantError(
            f"unknown recipe {spec!r}: not a built-in ({', '.join(builtin_recipes())}) nor an existing .toml file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AsrQuantError(f"{path}: cannot read recipe ({e})") from None
    return parse_recipe(text, source=str(path), default_name=path.stem)


def parse_recipe(text: str, source: str = "<recipe>", default_name: str = "recipe") -> Recipe:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise AsrQuantError(f"{source}: not valid TOML ({e})") from None
    return _Parser(source).recipe(data, default_name)


def recipe_from_dict(data: dict, source: str = "<recipe>") -> Recipe:
    """A recipe from its :meth:`Recipe.to_dict` form (as saved beside a quantized model)."""
    return _Parser(source).recipe(data, str(data.get("name", "recipe")))


class _Parser:
    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, msg: str):
        raise AsrQuantError(f"{self.source}: {key}: {msg}")

    def known(self, table: dict, allowed: set[str], where: str) -> None:
        for k in table:
            if k not in allowed:
                key = f"{where}.{k}" if where else k
                self.fail(key, f"unknown key (expected one of: {', '.join(sorted(allowed))})")

    def typed(self, value, typ: type, key: str):
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if typ is int and isinstance(value, bool) or not isinstance(value, typ):
            self.fail(key, f"must be {typ.__name__}, not {type(value).__name__} {value!r}")
        return value

    def strings(self, value, key: str) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
            self.fail(key, f"must be a string or a list of strings, not {value!r}")
        return tuple(items)

    def recipe(self, data: dict, default_name: str) -> Recipe:
        self.known(data, {"name", "description", "ignore", "calibration", "rules", "embedding"}, "")
        name = self.typed(data.get("name", default_name), str, "name")
        description = self.typed(data.get("description", ""), str, "description")
        ignore = self.strings(data["ignore"], "ignore") if "ignore" in data else DEFAULT_IGNORE
        calib = self.typed(data.get("calibration", {}), dict, "calibration")
        self.known(calib, {"clips"}, "calibration")
        clips = self.typed(calib.get("clips", 0), int, "calibration.clips")
        if clips < 0:
            self.fail("calibration.clips", f"must be >= 0, not {clips}")
        rules_data = data.get("rules")
        if not isinstance(rules_data, list) or not rules_data:
            self.fail("rules", "a recipe needs at least one [[rules]] table")
        rules = tuple(self.rule(r, f"rules[{i}]") for i, r in enumerate(rules_data))
        for i, r in enumerate(rules):
            self.clips_for(r, f"rules[{i}]", clips)
        embedding = self.embedding(data["embedding"]) if "embedding" in data else None
        if embedding is not None:
            self.clips_for(embedding, "embedding", clips)
        return Recipe(name, rules, ignore, clips, description, self.source, embedding)

    def clips_for(self, rule: Rule, where: str, clips: int) -> None:
        if clips == 0 and rule.needs_stats:
            self.fail("calibration.clips", f"{where}.algorithm {rule.algorithm} needs calibration clips (> 0)")
        if clips == 0 and rule.refine:
            self.fail("calibration.clips", f"{where}.refine {rule.refine} trains on calibration clips (> 0)")

    def embedding(self, e) -> Rule:
        if not isinstance(e, dict):
            self.fail("embedding", "must be a table")
        self.known(e, {"match", "format", "bits", "group_size", "symmetric", "scale_dtype", "algorithm", "options",
                       "refine", "refine_options"}, "embedding")
        tables = _table_algorithms()
        if e.get("algorithm", "rtn") not in tables:
            self.fail("embedding.algorithm", f"must be one of: {', '.join(tables)}, not {e['algorithm']!r}")
        rule = self.rule(e, "embedding")
        if rule.refine is not None:
            # A table belongs to no block (its lookups open the decoder, its tied projection closes
            # it): only the end-to-end loss sees both of its uses.
            if rule.refine_levels() != ("e2e",):
                self.fail("embedding.refine_options.level", 'a table is refined end to end only: level = "e2e"')
            # The int8 chain (--compute int8) is the encoder graph's Linears; a 4-bit table's lookups
            # and tied logits are computed from its dequantized rows in float.
            if get_algorithm(rule.refine).int8_chain(rule.all_refine_options()):
                self.fail("embedding.refine_options.activations",
                          "a table is not in the int8 chain (its lookups and logits are float); leave activations out")
        return rule

    def rule(self, r, where: str) -> Rule:
        if not isinstance(r, dict):
            self.fail(where, "must be a table")
        self.known(r, {"kind", "match", "format", "bits", "group_size", "symmetric", "scale_dtype", "algorithm",
                       "options", "refine", "refine_options"}, where)
        kinds = self.strings(r.get("kind", []), f"{where}.kind")
        for k in kinds:
            if k not in KINDS:
                self.fail(f"{where}.kind", f"unknown kind {k!r} (expected one of: {', '.join(KINDS)})")
        match = self.strings(r.get("match", []), f"{where}.match")
        fmt = self.typed(r.get("format", "int"), str, f"{where}.format")
        if fmt not in FORMATS:
            self.fail(f"{where}.format", f"unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")
        if fmt == "int":
            if "bits" not in r:
                self.fail(f"{where}.bits", "required for format int")
            bits = self.typed(r["bits"], int, f"{where}.bits")
            group = self.typed(r.get("group_size", 128), int, f"{where}.group_size")
            sym = self.typed(r.get("symmetric", False), bool, f"{where}.symmetric")
            dtype = self.typed(r.get("scale_dtype", "float32"), str, f"{where}.scale_dtype")
            try:
                scheme = QuantScheme.int(bits, group, sym, dtype)
            except ValueError as e:
                key = next(k for k in ("scale_dtype", "bits", "group_size") if k in str(e))
                self.fail(f"{where}.{key}", str(e))
        else:
            scheme = QuantScheme.nvfp4() if fmt == "nvfp4" else QuantScheme.mxfp4()
            for k in ("bits", "group_size", "symmetric", "scale_dtype"):
                if k in r and r[k] != getattr(scheme, k):
                    self.fail(f"{where}.{k}", f"{fmt} fixes {k} = {getattr(scheme, k)}, not {r[k]!r}")
        algo = self.typed(r.get("algorithm", "rtn"), str, f"{where}.algorithm")
        known = start_names()
        if algo not in known:
            also = f"; {algo} is a refinement: name it as refine" if algo in refinement_names() else ""
            self.fail(f"{where}.algorithm", f"unknown algorithm {algo!r} (expected one of: {', '.join(known)}){also}")
        options = self.options(r, "options", algo, where)
        refine, refine_options = None, {}
        if "refine" in r:
            refine = self.typed(r["refine"], str, f"{where}.refine")
            if refine not in refinement_names():
                self.fail(f"{where}.refine", f"unknown refinement {refine!r} (expected one of: "
                                             f"{', '.join(refinement_names())})")
            starts = get_algorithm(refine).starts
            if algo not in starts:
                self.fail(f"{where}.refine", f"{refine} refines {' or '.join(starts)}, not {algo}")
            refine_options = self.options(r, "refine_options", refine, where)
        elif "refine_options" in r:
            self.fail(f"{where}.refine_options", "given without refine")
        rule = Rule(scheme, algo, match, kinds, MappingProxyType(options), refine, MappingProxyType(refine_options))
        problem = get_algorithm(algo).option_problem(rule.all_options(), scheme)
        if problem is not None:
            self.fail(f"{where}.options.{problem[0]}", problem[1])
        if refine is not None:
            problem = get_algorithm(refine).option_problem(rule.all_refine_options(), scheme)
            if problem is not None:
                self.fail(f"{where}.refine_options.{problem[0]}", problem[1])
        return rule

    def options(self, r: dict, key: str, algo: str, where: str) -> dict:
        opts = self.typed(r.get(key, {}), dict, f"{where}.{key}")
        spec = get_algorithm(algo).options
        self.known(opts, set(spec), f"{where}.{key}")
        return {k: self.typed(v, spec[k][0], f"{where}.{key}.{k}") for k, v in opts.items()}
