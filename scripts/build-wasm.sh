#!/usr/bin/env bash
# Rebuilds wasm/oreal_kernels.wasm from wasm/oreal_kernels.c. Needs clang + lld with the wasm32 target
# (Debian: apt-get install -y clang lld). Only developers changing the kernels run this: the .wasm is committed, so
# installs and CI never need the toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
CLANG="${CLANG:-clang}"
# Shared imported memory (atomics + bulk-memory are required by wasm-ld for it), no libc, no start function.
# The JS side owns the whole memory; the kernels use no C stack and no static data, so one memory can be shared by
# one instance per thread. The 4 GiB maximum is the wasm32 limit; the JS side picks its own (smaller or equal) one.
"$CLANG" --target=wasm32 -O3 -msimd128 -matomics -mbulk-memory -nostdlib -ffreestanding \
  -fno-builtin -Wall -Wextra -mllvm -disable-lsr \
  -Wl,--no-entry -Wl,--import-memory -Wl,--shared-memory -Wl,--max-memory=4294967296 \
  -Wl,-z,stack-size=4096 -Wl,--global-base=1024 -Wl,--strip-all \
  -o wasm/oreal_kernels.wasm wasm/oreal_kernels.c
# The kernels must not use the C stack (its pointer global would be shared by all threads): check the disassembly.
OBJDUMP="$(command -v llvm-objdump || command -v llvm-objdump-14 || true)"
if [ -n "$OBJDUMP" ] && "$OBJDUMP" -d wasm/oreal_kernels.wasm | grep -q 'global\.\(get\|set\)'; then
  echo "build-wasm: the kernels use the C stack (global.get/set found); keep arrays out of the C code" >&2
  exit 1
fi
ls -l wasm/oreal_kernels.wasm
