"""The CPU a measurement names: model and the instruction sets that decide int8 speed."""

from asrquant.cpu import cpu_info, describe_cpu, parse_cpuinfo, read_cpu_info

XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_bf16 amx_tile amx_int8
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
"""


def test_model_name_and_int8_features():
    info = parse_cpuinfo(XEON)
    assert info == {"model": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
                    "features": ["AVX2", "AVX512", "AVX512-VNNI", "AMX"], "missing": []}
    amd = parse_cpuinfo("model name : AMD EPYC\nflags : sse2 avx2\n")
    assert amd["features"] == ["AVX2"] and amd["missing"] == ["AVX512-VNNI", "AMX"]


def test_description_names_what_is_missing(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("model name\t: AMD EPYC\nflags\t\t: fpu avx avx2 fma\n")
    info = read_cpu_info(str(path))
    assert describe_cpu(info).endswith(": AVX2; no AVX512-VNNI, no AMX") and info["label"] == describe_cpu(info)


def test_without_proc_the_platform_names_it(tmp_path):
    info = read_cpu_info(str(tmp_path / "none"))
    assert info["model"] and info["missing"] is None
    assert describe_cpu(info).endswith("(instruction sets unknown)")


def test_this_machine_has_a_label():
    info = cpu_info()
    assert info["model"] and info["label"].startswith(info["model"])
