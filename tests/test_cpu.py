from asrquant.cpu import cpu_info, parse_cpuinfo

XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_bf16 amx_tile amx_int8
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
"""


def test_model_name_and_features():
    info = parse_cpuinfo(XEON)
    assert info == {"model": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
                    "features": ["AVX2", "AVX512", "AVX512-VNNI", "AMX"]}
    assert parse_cpuinfo("model name : AMD EPYC\nflags : sse2 avx2\n")["features"] == ["AVX2"]


def test_this_machine_has_a_label():
    info = cpu_info()
    assert info["model"] and info["label"].startswith(info["model"])
