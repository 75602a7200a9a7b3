"""The inputs of the robustness measurements, written to a directory outside the repository:

    long.wav         real clips of ../shared/data (vitw8, dev, real) end to end, repeated to SECONDS
    ten-min-{1,2,3}.wav and tenmin.jsonl   three 10-minute clips (the bench's streaming)
    bench60.jsonl    60 clips: the 44 real ones, 15 of dev degraded by `asrquant data wild`
                     (made beforehand into WILD_DIR), and one WAV cut to a third of its length
    broken-model/    tiny.en's side files with a model.bin cut in half

    python make_inputs.py OUT_DIR WILD_DIR [SECONDS]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from asrquant.audio import load_audio
from asrquant.models.whisper.hub import resolve

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
SETS = ("vitw8", "dev", "real")


def rows(name: str) -> list[dict]:
    manifest = DATA / name / "manifest.jsonl"
    out = []
    for line in manifest.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out.append({**row, "audio": str((manifest.parent / row["audio"]).resolve())})
    return out


def concatenated(clips: list[dict], seconds: float) -> np.ndarray:
    pieces, total, i = [], 0, 0
    while total < seconds * 16000:
        audio = load_audio(clips[i % len(clips)]["audio"])
        pieces += [audio, np.zeros(8000, np.float32)]  # half a second between clips
        total += len(audio) + 8000
        i += 1
    return np.concatenate(pieces)[: int(seconds * 16000)]


def main(out: Path, wild: Path, seconds: float = 3600.0) -> None:
    out.mkdir(parents=True, exist_ok=True)
    real = [r for s in SETS for r in rows(s)]
    sf.write(out / "long.wav", concatenated(real, seconds), 16000, subtype="PCM_16")
    ten = []
    for k in range(3):
        path = out / f"ten-min-{k + 1}.wav"
        sf.write(path, concatenated(real[k * 7:] + real[: k * 7], 600), 16000, subtype="PCM_16")
        ten.append({"id": path.stem, "audio": str(path), "text": "not scored", "lang": "en"})
    (out / "tenmin.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ten))

    degraded = [{**r, "audio": str((wild / r["audio"]).resolve())}
                for r in map(json.loads, (wild / "manifest.jsonl").read_text().splitlines())
                if r.get("category") != "clean"][:15]
    cut = out / "cut-to-a-third.wav"
    whole = Path(real[0]["audio"]).read_bytes()
    cut.write_bytes(whole[: len(whole) // 3])
    broken_clip = {**real[0], "id": "cut-to-a-third", "audio": str(cut), "category": "broken"}
    (out / "bench60.jsonl").write_text("".join(json.dumps(r) + "\n" for r in real + degraded + [broken_clip]))

    model = out / "broken-model"
    model.mkdir(exist_ok=True)
    tiny = resolve("whisper-tiny.en")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(tiny / name, model / name)
    with open(tiny / "model.bin", "rb") as f:
        (model / "model.bin").write_bytes(f.read((tiny / "model.bin").stat().st_size // 2))
    print(f"{out}: long.wav {seconds:.0f} s, 3 x 600 s, bench60.jsonl "
          f"{len(real) + len(degraded) + 1} clips, broken-model/")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 3600.0)
