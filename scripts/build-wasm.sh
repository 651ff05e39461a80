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
build() { # build <output> [extra clang flags...]
  local out="$1"
  shift
  "$CLANG" --target=wasm32 -O3 -msimd128 -matomics -mbulk-memory -nostdlib -ffreestanding \
    -fno-builtin -Wall -Wextra -mllvm -disable-lsr \
    -Wl,--no-entry -Wl,--import-memory -Wl,--shared-memory -Wl,--max-memory=4294967296 \
    -Wl,-z,stack-size=4096 -Wl,--global-base=1024 -Wl,--strip-all "$@" \
    -o "$out" wasm/oreal_kernels.c
  # The kernels must not use the C stack (its pointer global would be shared by all threads): check the disassembly.
  if [ -n "$OBJDUMP" ] && "$OBJDUMP" -d "$out" | grep -q 'global\.\(get\|set\)'; then
    echo "build-wasm: the kernels use the C stack (global.get/set found); keep arrays out of the C code" >&2
    exit 1
  fi
}
OBJDUMP="$(command -v llvm-objdump || command -v llvm-objdump-14 || true)"
build wasm/oreal_kernels.wasm
# The relaxed-SIMD variant: GEMM multiply-adds as f32x4.relaxed_madd (see MADD in oreal_kernels.c). clang 14 emits the
# prototype opcode f32x4.fma (fd af 01); rewrite each one to relaxed_madd (fd 85 02, same length), checking that the
# byte pattern occurs exactly as often as the disassembler lists the instruction.
build wasm/oreal_kernels_relaxed.wasm -mrelaxed-simd -DOREAL_RELAXED
if [ -z "$OBJDUMP" ]; then
  echo "build-wasm: llvm-objdump is needed to check the relaxed-SIMD rewrite" >&2
  exit 1
fi
N_FMA="$("$OBJDUMP" -d wasm/oreal_kernels_relaxed.wasm | grep -c 'f32x4\.fma' || true)"
node -e '
  const fs = require("fs");
  const [file, want] = [process.argv[1], Number(process.argv[2])];
  const b = fs.readFileSync(file);
  let n = 0;
  for (let i = 0; i + 2 < b.length; i++) if (b[i] === 0xfd && b[i + 1] === 0xaf && b[i + 2] === 0x01) n++;
  if (n !== want || n === 0) { console.error(`build-wasm: ${n} fma byte patterns, ${want} instructions`); process.exit(1); }
  for (let i = 0; i + 2 < b.length; i++) if (b[i] === 0xfd && b[i + 1] === 0xaf && b[i + 2] === 0x01) { b[i + 1] = 0x85; b[i + 2] = 0x02; }
  fs.writeFileSync(file, b);
' wasm/oreal_kernels_relaxed.wasm "$N_FMA"
ls -l wasm/oreal_kernels.wasm wasm/oreal_kernels_relaxed.wasm
