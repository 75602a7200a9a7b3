"""The bench report: table, failures new to a model, and the plot."""

from asrquant.eval.report import new_failures, plot, to_markdown


def clip(cid, cat, hyp, errors, stops=("eot",)):
    return {"id": cid, "category": cat, "ref": "a b c d", "hyp": hyp, "errors": errors, "ref_words": 4,
            "agreement": 1 - errors / 4, "stops": list(stops)}


def run(spec, clips, bits=None):
    cats = sorted({c["category"] for c in clips})
    agg = lambda cs: {"wer": sum(c["errors"] for c in cs) / (4 * len(cs)), "agreement": 0.5, "n": len(cs),  # noqa: E731
                      "ref_words": 4 * len(cs)}
    return {"spec": spec, "engine": "asrquant-torch", "size_bytes": 10_000_000, **agg(clips), "rtf": 0.2,
            "encoder_share": 0.6, "peak_rss_mb": 300, "load_s": 1.0, "bits_per_weight": bits,
            "failures": {"empty": sum(not c["hyp"] for c in clips), "loop": sum("loop" in c["stops"] for c in clips),
                         "max_length": 0, "bad_input": 0},
            "per_category": {k: agg([c for c in clips if c["category"] == k]) for k in cats}, "clips": clips}


REPORT = {
    "settings": {"clips": 3, "beam": 1, "threads": 1, "jobs": 2, "max_new_tokens": 224, "repeat": 1},
    "runs": [run("fp32", [clip("x", "clean", "a b c d", 0), clip("y", "noise", "a a a a", 3, ("loop",)),
                          clip("z", "noise", "a b", 2)]),
             run("q4", [clip("x", "clean", "a b c d", 0), clip("y", "noise", "a a a a", 3, ("loop",)),
                        clip("z", "noise", "", 4)], bits=4.31)],
}


def test_failures_new_to_a_model_are_listed():
    base, q = REPORT["runs"]
    assert new_failures(base, q) == ["z (empty)"]  # y loops in both: not new
    md = to_markdown(REPORT)
    assert "- q4: z (empty)" in md and "| 4.31 |" in md and "shared the CPU" in md


def test_plot_writes_a_png(tmp_path):
    plot(REPORT, str(tmp_path / "wer.png"))
    assert (tmp_path / "wer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rows_carry_short_labels_and_a_legend_gives_the_specs():
    from asrquant.eval.report import labels, short_label

    assert short_label("faster-whisper:whisper-base:int8") == "faster-whisper int8"
    assert short_label("/home/u/.cache/asrquant/demo/whisper-base-onnx@int4") == "int4"
    assert short_label("/home/u/.cache/asrquant/demo/whisper-base-cpu") == "whisper-base-cpu"
    assert short_label("whisper-base") == "fp32"
    report = {**REPORT, "labels": {"q4": "int4 (cpu)"}}
    assert labels(report) == ["fp32", "int4 (cpu)"]
    md = to_markdown({**report, "settings": {**REPORT["settings"], "cpu": "AMD EPYC, 2 cores: AVX2"}})
    assert "| int4 (cpu) | asrquant-torch |" in md and "| int4 (cpu) | `q4` |" in md
    assert "CPU: AMD EPYC, 2 cores: AVX2." in md
    assert "| fp32 | asrquant-torch | 10.0 | — | 41.7 [" in md  # WER with its interval


def test_tradeoff_figure_is_written_beside_the_per_category_one(tmp_path):
    from asrquant.eval.report import write_reports

    write_reports(REPORT, "asrquant bench", plot_path=tmp_path / "wer.png")
    assert (tmp_path / "wer-tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_card_section_has_per_condition_deltas_and_new_failures():
    from asrquant.eval.report import card_section

    report = {**REPORT, "settings": {**REPORT["settings"], "data": ["/d/vitw8/manifest.jsonl"]}}
    text = card_section(report, ["float", "int4"])
    assert "| float | 10.0 |" in text and "| noise | 8 |" in text and "New failures" in text and "z (empty)" in text


def test_output_with_no_word_is_a_failure():
    """Only punctuation, what numerically broken weights give, is counted as no words, as empty output is."""
    from asrquant.eval.report import clip_failures

    assert clip_failures(clip("a", "clean", "!!!!!!!!", 4)) == {"empty"}
    assert clip_failures(clip("a", "clean", "。，", 4) | {"lang": "zh"}) == {"empty"}
    assert clip_failures(clip("a", "clean", "a!", 3)) == set()
