"""The CPU a measurement names: model and the instruction sets that decide int8 speed."""

from asrquant.eval.cpu import cpu_info, describe_cpu


def test_model_name_and_int8_features_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
                    "flags\t\t: fpu sse avx2 avx512f avx512_vnni amx_tile amx_int8\n")
    info = cpu_info(str(path))
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert info["features"] == ["AVX2", "AVX512", "AVX512-VNNI", "AMX"] and info["missing"] == []
    path.write_text("model name\t: AMD EPYC\nflags\t\t: fpu avx avx2 fma\n")
    assert describe_cpu(cpu_info(str(path))).endswith(": AVX2; no AVX512-VNNI, no AMX")


def test_without_proc_the_platform_names_it(tmp_path):
    info = cpu_info(str(tmp_path / "none"))
    assert info["model"] and info["missing"] is None
    assert describe_cpu(info).endswith("(instruction sets unknown)")
