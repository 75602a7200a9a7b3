"""The page's loop guard (static/loop.js) is the Python runner's (asrquant.decoding.find_loop) rule
for rule: both judge the same token sequences, loops of every period and near misses included, and
the page's logits processor forces the end token at a loop or at the token budget, saying which."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from asrquant.decoding import find_loop

LOOP_JS = Path(__file__).resolve().parents[2] / "src" / "asrquant" / "web" / "static" / "loop.js"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="no node")


def _sequences() -> list[list[int]]:
    rng = random.Random(22)
    seqs = [[], [5] * 15, [5] * 16, [1, 2, 3, 4] * 4, [1, 2, 3, 4] * 4 + [1, 2], [1, 2, 3] * 6, [1, 2, 3] * 6 + [9]]
    for _ in range(400):
        period = rng.randint(1, 40)
        unit = [rng.randint(0, 3) for _ in range(period)]
        head = [rng.randint(0, 50) for _ in range(rng.randint(0, 10))]
        body = (unit * 20)[: rng.randint(0, period * 6)]
        if body and rng.random() < 0.3:
            body[rng.randrange(len(body))] += 100  # a near miss
        seqs.append(head + body)
    return seqs


def _node(tmp_path: Path, script: str) -> str:
    # loop.js imports transformers.js' LogitsProcessor from the page's vendor path: a stand-in here.
    src = LOOP_JS.read_text().replace("import { LogitsProcessor } from '/vendor/transformers/transformers.js';",
                                      "class LogitsProcessor { constructor() { const f = (...a) => f._call(...a); "
                                      "return Object.setPrototypeOf(f, new.target.prototype); } }")  # as its Callable
    assert "class LogitsProcessor" in src
    (tmp_path / "loop.mjs").write_text(src)
    (tmp_path / "main.mjs").write_text(script)
    return subprocess.run(["node", str(tmp_path / "main.mjs")], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def test_find_loop_matches_the_python_runner(tmp_path):
    seqs = _sequences()
    (tmp_path / "seqs.json").write_text(json.dumps(seqs))
    out = _node(tmp_path, "import fs from 'node:fs'; import { findLoop } from './loop.mjs';\n"
                          f"const seqs = JSON.parse(fs.readFileSync({json.dumps(str(tmp_path / 'seqs.json'))}));\n"
                          "console.log(JSON.stringify(seqs.map((s) => findLoop(s))));\n")
    js = json.loads(out)
    py = [find_loop(s) for s in seqs]
    assert js == py
    assert sum(p > 0 for p in py) > 50 and sum(p == 0 for p in py) > 50  # both kinds exercised


def test_guard_forces_the_end_token(tmp_path):
    # Prompt of 2 tokens; the guard sees prompt + generated, as transformers.js' generate() passes them.
    out = _node(tmp_path, """import { LoopGuard } from './loop.mjs';
const eot = 3, run = (generated, budget) => {
  const g = new LoopGuard(eot, budget);
  const logits = () => [{ data: new Float32Array(5).fill(1) }];
  g([[7n, 8n]], logits());                       // first step: the prompt only
  const row = g([[7n, 8n, ...generated.map(BigInt)]], logits())[0].data;
  return { stop: g.stop, forced: row[eot] === 0 && row.filter((x) => x === -Infinity).length === 4 };
};
console.log(JSON.stringify([run(Array(16).fill(1), 224), run(Array(15).fill(1), 224),
                            run([1, 2, 1, 2], 4), run([1, 2, 1], 4)]));
""")
    assert json.loads(out) == [{"stop": "loop", "forced": True}, {"stop": "eot", "forced": False},
                               {"stop": "max_length", "forced": True}, {"stop": "eot", "forced": False}]
