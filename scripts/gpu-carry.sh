#!/usr/bin/env bash
# Packs what a bare Linux x86-64 GPU machine (no Node.js, no Vulkan loader, no network) needs to run oreal's GPU
# benchmarks from a copy of this checkout: the Node.js binary, the runtime node_modules with webgpu's Dawn binary for
# linux-x64 only, and the Debian package of the Vulkan loader, all compressed (about 31 MB, most of it Node.js).
# scripts/gpu-run.sh unpacks them there.
#
#   bash scripts/gpu-carry.sh CARRY_DIR      (after `npm ci`; send dist/ along, or build it there)
set -euo pipefail
C=${1:?usage: bash scripts/gpu-carry.sh CARRY_DIR}
[ -d node_modules/webgpu/dist/linux-x64 ] || { echo "gpu-carry: node_modules/webgpu is missing: run npm ci first" >&2; exit 1; }
rm -rf "$C"
mkdir -p "$C/nm"
xz -T0 -6 -c "$(command -v node)" >"$C/node.xz"
# The runtime packages (no dev dependencies), each top-level package directory once.
npm ls --omit=dev --parseable --all | tail -n +2 | sed "s|^$PWD/node_modules/||" | grep -v /node_modules/ | sort -u |
  while read -r pkg; do
    mkdir -p "$C/nm/$(dirname "$pkg")"
    if [ "$pkg" = webgpu ]; then
      # Without the prebuilt binaries: the linux-x64 one travels compressed.
      mkdir -p "$C/nm/webgpu"
      find node_modules/webgpu -maxdepth 1 -type f -exec cp {} "$C/nm/webgpu/" \;
      mkdir -p "$C/nm/webgpu/dist/linux-x64"
      xz -T0 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node >"$C/dawn.node.xz"
    else
      cp -r "node_modules/$pkg" "$C/nm/$pkg"
    fi
  done
tar -C "$C/nm" -cJf "$C/nm.tar.xz" .
rm -rf "$C/nm"
# The Vulkan loader (the GPU driver's own ICD is on the machine already).
(cd "$C" && apt-get download libvulkan1 >/dev/null 2>&1) || echo "gpu-carry: could not download libvulkan1 (apt-get update first?); gpu-run.sh needs it where the machine has no loader" >&2
du -sh "$C"
