"""Deployment targets: one runtime each, the best measured bundle of a recipe and export options.

A target is data, a TOML file in this folder (like the recipes of ``asrquant.quant.recipes``):

    version    bumped when the bundle changes (recorded in the artifact's manifest and card)
    runtime    what loads the artifact
    summary    what the artifact is, in one line
    format     an ``asrquant export --format``
    recipe     a built-in recipe name
    benchmark  the campaign (benchmarks/<campaign>/README.md) that chose it
    chosen     why, in a few sentences
    [options]  export options (ONNX: compute, fp16, smooth, attention)

``asrquant targets`` lists them; ``asrquant export MODEL --target NAME --calib M --out DIR`` applies one.
Torch-free: listing targets loads no model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib

from ...errors import AsrQuantError

# asrquant.export.command checks it has them all
FORMATS = ("onnx", "compressed-tensors", "nvfp4", "mlx", "transformers.js")
KEYS = {"version", "runtime", "summary", "format", "recipe", "benchmark", "chosen", "options"}
OPTIONS = {"compute": ("float", "int8"), "fp16": (True, False), "smooth": (True, False),
           "attention": ("unfused", "fused", "int8")}


@dataclass(frozen=True)
class Target:
    name: str
    version: int
    runtime: str
    summary: str
    format: str
    recipe: str
    benchmark: str
    chosen: str
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "format": self.format, "recipe": self.recipe,
                "options": dict(self.options), "benchmark": self.benchmark}

    def flags(self) -> str:
        """The expert's equivalent of ``--target NAME``."""
        parts = [f"--recipe {self.recipe}", f"--format {self.format}"]
        if self.options.get("compute", "float") != "float":
            parts.append(f"--compute {self.options['compute']}")
        if self.options.get("fp16"):
            parts.append("--fp16")
        if self.options.get("attention", "unfused") != "unfused":
            parts.append(f"--attention {self.options['attention']}")
        if self.options.get("compute") == "int8" and not self.options.get("smooth", True):
            parts.append("(no --calib at export: no smoothing)")
        return " ".join(parts)


def target_names() -> list[str]:
    d = resources.files(__package__)
    return sorted(p.name[: -len(".toml")] for p in d.iterdir() if p.name.endswith(".toml"))


def load_target(name: str) -> Target:
    if name not in target_names():
        raise AsrQuantError(f"unknown target {name!r} (known: {', '.join(target_names())}; `asrquant targets`)")
    text = (resources.files(__package__) / f"{name}.toml").read_text(encoding="utf-8")
    where = f"target {name} ({name}.toml)"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise AsrQuantError(f"{where}: not valid TOML ({e})") from None
    unknown = set(data) - KEYS
    missing = KEYS - {"options"} - set(data)
    if unknown or missing:
        raise AsrQuantError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    if data["format"] not in FORMATS:
        raise AsrQuantError(f"{where}: format {data['format']!r} is not one of {', '.join(FORMATS)}")
    options = dict(data.get("options", {}))
    for key, value in options.items():
        if key not in OPTIONS or value not in OPTIONS[key]:
            raise AsrQuantError(f"{where}: option {key} = {value!r} (known: {OPTIONS})")
    if options and data["format"] != "onnx":
        raise AsrQuantError(f"{where}: [options] are ONNX export options; format is {data['format']}")
    return Target(name=name, version=int(data["version"]), runtime=data["runtime"], summary=data["summary"],
                  format=data["format"], recipe=data["recipe"], benchmark=data["benchmark"],
                  chosen=" ".join(data["chosen"].split()), options=options)


def all_targets() -> list[Target]:
    return [load_target(n) for n in target_names()]


def describe(targets: list[Target]) -> str:
    """What ``asrquant targets`` prints."""
    out = []
    for t in targets:
        out += [f"{t.name} (v{t.version}): {t.summary}",
                f"  runtime:   {t.runtime}",
                f"  flags:     {t.flags()}",
                f"  chosen by: {t.benchmark}: {t.chosen}", ""]
    return "\n".join(out).rstrip() + "\n"
