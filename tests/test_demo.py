"""The demo's first table: float, the cpu target's int4 artifact and faster-whisper int8, with WER
intervals, size against the float16 source, RTF against faster-whisper int8's, peak RSS and the CPU."""

from asrquant.demo import demo_specs, headline


def run(spec, size_mb, rtf, rss, errors):
    clips = [{"id": f"c{i}", "category": "clean", "ref": "a b c d", "hyp": "x", "errors": e, "ref_words": 4,
              "agreement": 1 - e / 4, "stops": ["eot"]} for i, e in enumerate(errors)]
    return {"spec": spec, "engine": "e", "size_bytes": size_mb * 1e6, "wer": sum(errors) / (4 * len(errors)),
            "rtf": rtf, "peak_rss_mb": rss, "clips": clips, "per_category": {}}


def test_headline_rows_and_ratios(tmp_path):
    specs = demo_specs("whisper-base", tmp_path / "whisper-base-cpu")
    assert list(specs.values()) == ["fp32", "int4 (cpu)", "faster-whisper int8", "faster-whisper fp32"]
    runs = [run(s, size, rtf, rss, errs) for s, size, rtf, rss, errs in zip(
        specs, (145.2, 42.3, 145.2, 145.2), (0.5, 0.45, 0.5, 0.55), (700, 290, 330, 520),
        ([0, 1, 0, 2], [0, 1, 1, 2], [0, 1, 0, 1], [0, 1, 0, 2]))]
    report = {"runs": runs, "labels": specs, "settings": {"clips": 4, "threads": 2, "cpu": "AMD EPYC, 2 cores: AVX2"}}
    table = headline(report)
    assert "CPU: AMD EPYC, 2 cores: AVX2" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| |")]
    assert [r.split(" | ")[0] for r in rows] == ["| fp32", "| int4 (cpu)", "| faster-whisper int8"]
    assert "| 42.3 | 0.29 | 0.450 | 0.90 | 290 |" in rows[1]
