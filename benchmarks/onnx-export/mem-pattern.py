"""Peak RSS of an ONNX artifact transcribing 4 vitw8 clips, with the encoder session's memory
pattern on (onnxruntime's default) or off (the runner's choice, see asrquant/runtime/onnx.py).
Each setting in its own process, since a process's peak only grows:

    python benchmarks/onnx-export/mem-pattern.py runs/issue5/whisper-base-onnx@int4-i8s-fp16
"""

import json
import resource
import subprocess
import sys

DATA = "../shared/data/vitw8/manifest.jsonl"


def child(spec: str, pattern: bool) -> None:
    import onnxruntime as ort

    from asrquant.audio import load_audio
    from asrquant.eval.manifest import read_manifest
    from asrquant.models.whisper import onnx_session as ow
    from asrquant.runtime.onnx import open_onnx_engine, session_options

    def load(path, threads, mem_pattern=True):  # the encoder's session gets `pattern`, the others their default
        opts = session_options(threads, pattern if path.name.startswith("encoder") else mem_pattern)
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    ow._load = load  # the Whisper runner opens every session through this
    engine = open_onnx_engine(spec, threads=2)
    for clip in read_manifest(DATA)[:4]:
        engine.transcribe(load_audio(clip.audio), "en", 1, 224)
    print(json.dumps({"encoder_mem_pattern": pattern,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    if len(sys.argv) == 3:
        child(sys.argv[1], sys.argv[2] == "on")
    elif len(sys.argv) == 2:
        for setting in ("on", "off", "on", "off"):
            subprocess.run([sys.executable, __file__, sys.argv[1], setting], check=True)
    else:
        sys.exit(__doc__)
