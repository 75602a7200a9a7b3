"""The cached default bench set builds on a fresh machine, fast, and is reused."""

import time

import pytest

pytest.importorskip("piper")
pytest.importorskip("audiomentations")
pytest.importorskip("pyroomacoustics")

from asrquant.data import default_set, wild  # noqa: E402
from asrquant.data.common import read_jsonl  # noqa: E402


def test_default_bench_set_is_built_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ASRQUANT_CACHE", str(tmp_path / "cache"))
    t0 = time.perf_counter()
    path = default_set.default_bench_set()
    built = time.perf_counter() - t0
    assert path.parent == tmp_path / "cache" / "data"
    rows = read_jsonl(path)
    cats = [r["category"] for r in rows]
    assert cats.count("clean") == default_set.BENCH_SENTENCES
    for c in wild.CONDITIONS:
        assert cats.count(c) == default_set.BENCH_SENTENCES // len(wild.CONDITIONS)
    assert all(r["split"] == "eval" for r in rows)
    t0 = time.perf_counter()
    assert default_set.default_bench_set() == path
    assert time.perf_counter() - t0 < max(1.0, built / 5)  # the cache, not a rebuild


def test_a_damaged_cached_set_is_rebuilt(tmp_path):
    sentences = default_set.load_sentences("calib")[:2]
    path = default_set.build_set("mini", sentences, conditions=["dropout"], cache_dir=tmp_path)
    assert [r["category"] for r in read_jsonl(path)] == ["clean", "dropout", "clean", "dropout"]
    victim = next(path.glob("*_dropout.wav"))
    size = victim.stat().st_size
    victim.write_bytes(b"RIFF")
    assert default_set.build_set("mini", sentences, conditions=["dropout"], cache_dir=tmp_path) == path
    assert victim.stat().st_size == size
    other = default_set.build_set("mini", sentences, seed=1, conditions=["dropout"], cache_dir=tmp_path)
    assert other != path  # the seed is part of the key


def test_calib_pool_joins_two_seeds_sentence_by_sentence(tmp_path, monkeypatch):
    from asrquant.eval.manifest import read_manifest

    sentences = default_set.load_sentences("calib")[:3]
    monkeypatch.setattr(default_set, "load_sentences", lambda split: sentences)
    path = default_set.default_calib_pool(cache_dir=tmp_path)
    clips = read_manifest(path)  # audio paths resolve relative to the joined manifest
    assert len(clips) == 4 * len(sentences) and all(c.audio.is_file() for c in clips)
    assert [c.text for c in clips] == [s for s in sentences for _ in range(4)]
    assert [c.category == "clean" for c in clips[:4]] == [True, False, True, False]
    seeds = {c.audio.parent.name.split("-")[0] for c in clips[:4]}
    assert seeds == {f"calibpool{s}" for s in default_set.POOL_SEEDS}
    assert default_set.default_calib_pool(cache_dir=tmp_path) == path
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [path.name]  # no temporary left


def test_data_default_cli_prints_the_pool(tmp_path, monkeypatch, capsys):
    from asrquant.cli import main

    seen = []
    monkeypatch.setattr(default_set, "default_calib_pool",
                        lambda cache_dir, show_progress: seen.append(cache_dir) or tmp_path / "pool.jsonl")
    assert main(["data", "default", "--calib-pool", "--cache-dir", str(tmp_path)]) == 0
    assert seen == [str(tmp_path)] and capsys.readouterr().out.strip() == str(tmp_path / "pool.jsonl")
    with pytest.raises(SystemExit) as e:
        main(["data", "default", "--calib", "--calib-pool"])
    assert e.value.code == 2
