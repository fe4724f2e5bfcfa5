#!/usr/bin/env bash
# A separate environment with llama.cpp, used by tests/test_llama_cpp.py and the docs' llama.cpp section:
# - llama-server and llama.cpp's shared libraries, compiled from the llama.cpp sources vendored in the
#   llama-cpp-python sdist, portable (-DGGML_NATIVE=OFF: a -march=native build of 0.3.36 crashed in its
#   first decode on our CI machines);
# - llama-cpp-python's Python package in .venv-llama, on those same libraries (no second compile), with
#   torch (CPU, pinned) and this project's light dependencies, so a worker there can import steering;
# - llama-cvector-generator, llama.cpp's own control-vector trainer (for the import round trip).
# This project is put on PYTHONPATH there, never installed into it. The first build takes ~10 min on 2
# cores; it is cached under $STEERING_BUILD_CACHE (default ~/.cache/steering-build), keyed by version and
# flags, so later runs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VERSION=0.3.36
FLAGS="-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_RPATH=\$ORIGIN -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
FLAGS="$FLAGS -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF"
FLAGS="$FLAGS -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF"
TARGETS="llama-server llama-cvector-generator"
key=$(echo "$VERSION $FLAGS $TARGETS" | sha256sum | cut -c1-16)
cache="${STEERING_BUILD_CACHE:-$HOME/.cache/steering-build}/llama.cpp-$VERSION-$key"
if [ ! -x "$cache/bin/llama-server" ] || [ ! -x "$cache/bin/llama-cvector-generator" ]; then
  echo "building llama.cpp (llama-cpp-python $VERSION sources) once: ~10 min on 2 cores" >&2
  mkdir -p "$(dirname "$cache")"
  tmp=$(mktemp -d "$cache.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$tmp/sdist"
  tar xzf "$tmp"/sdist/llama_cpp_python-$VERSION.tar.gz -C "$tmp"
  # shellcheck disable=SC2086
  cmake -S "$tmp/llama_cpp_python-$VERSION/vendor/llama.cpp" -B "$tmp/build" -G Ninja $FLAGS >"$tmp/cmake.log"
  # shellcheck disable=SC2086
  cmake --build "$tmp/build" --target $TARGETS -j "$(nproc)" >>"$tmp/cmake.log"
  mkdir -p "$tmp/out/bin" "$tmp/out/sdist"
  cp -a "$tmp"/build/bin/llama-server "$tmp"/build/bin/llama-cvector-generator "$tmp"/build/bin/*.so* "$tmp/out/bin/"
  cp "$tmp"/sdist/*.tar.gz "$tmp/out/sdist/"
  rm -rf "$cache" && mv "$tmp/out" "$cache"
fi
if [ ! -x .venv-llama/bin/python ]; then
  "$PY" -m venv .venv-llama
fi
stamp=.venv-llama/.installed
want=$(cat scripts/llama_env.sh | sha256sum | cut -d' ' -f1)-$key
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # The Python package alone (LLAMA_BUILD=OFF compiles nothing); then the libraries built above.
  CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" .venv-llama/bin/pip install -q --disable-pip-version-check \
    --no-cache-dir "$cache"/sdist/*.tar.gz "numpy==2.4.6" "gguf==0.19.0" "torch==2.13.0" "einops==0.8.2" \
    "jaxtyping==0.3.11" "tqdm==4.70.1" "safetensors==0.8.0" "filelock==4.3.1"
  lib=$(.venv-llama/bin/python -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('llama_cpp').origin).parent / 'lib')")
  mkdir -p "$lib" && cp -a "$cache"/bin/*.so* "$lib/"
  echo "$want" >"$stamp"
fi
echo "$cache/bin" >.venv-llama/llama-bin  # where llama-server and llama-cvector-generator are
