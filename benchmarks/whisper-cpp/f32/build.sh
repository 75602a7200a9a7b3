#!/usr/bin/env bash
# whisper.cpp 1.8.5 (the version pywhispercpp 1.5.1 ships) from its source, patched to run a float32
# file on the CPU (im2col in float32 for float32 kernels), with WHISPER_ITYPE_F32=1 keeping its KV
# caches in float32 and WHISPER_DUMP_MEL=PATH writing its log-mel; and wcpp_tokens against it.
# Without the environment variables and with a float16 file it computes as the stock library.
#
#   bash benchmarks/whisper-cpp/f32/build.sh WHISPER_CPP_SOURCE_v1.8.5 OUT_DIR
set -euo pipefail
SRC=$(realpath "$1"); OUT=$(realpath -m "$2"); HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
cp -r "$SRC" "$OUT/whisper.cpp" && cd "$OUT/whisper.cpp" && patch -p1 < "$HERE/whisper-1.8.5.patch"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DWHISPER_BUILD_EXAMPLES=OFF \
    -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_SERVER=OFF -DGGML_NATIVE=ON -DGGML_OPENMP=OFF
cmake --build build -j 2
W="$OUT/whisper.cpp"
g++ -O2 -std=c++17 -o "$OUT/wcpp_tokens" "$HERE/wcpp_tokens.cpp" -I"$W/include" -I"$W/ggml/include" \
    -L"$W/build/src" -L"$W/build/ggml/src" -lwhisper -lggml -lggml-base -Wl,-rpath,"$W/build/src:$W/build/ggml/src"
echo "$OUT/wcpp_tokens"
