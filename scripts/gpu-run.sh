#!/usr/bin/env bash
# On a bare Linux x86-64 GPU machine, in a copy of this checkout with dist/ built: unpacks what scripts/gpu-carry.sh
# packed (the Vulkan loader into / when the machine has none, which needs root; Node.js into /tmp; node_modules here),
# points Dawn at the NVIDIA driver's Vulkan ICD when VK_DRIVER_FILES is unset, and runs bench/gpu-report.sh into
# OUT_DIR. Extra environment passes through (MAIN_JOB=1 adds the main job on the GPU and on the CPU; SMOKE=1 runs tiny
# sizes).
#
#   bash scripts/gpu-run.sh CARRY_DIR OUT_DIR
set -uo pipefail
C=${1:?usage: bash scripts/gpu-run.sh CARRY_DIR OUT_DIR}
OUT=${2:?usage: bash scripts/gpu-run.sh CARRY_DIR OUT_DIR}
if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
  for f in "$C"/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if ! command -v node >/dev/null; then
  mkdir -p /tmp/oreal-node/bin
  xz -dc "$C/node.xz" >/tmp/oreal-node/bin/node && chmod +x /tmp/oreal-node/bin/node
  export PATH=/tmp/oreal-node/bin:$PATH
fi
if [ ! -e node_modules/webgpu/dist/linux-x64/dawn.node ]; then
  mkdir -p node_modules
  tar -C node_modules -xJf "$C/nm.tar.xz"
  xz -dc "$C/dawn.node.xz" >node_modules/webgpu/dist/linux-x64/dawn.node
fi
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -e "$icd" ]; then export VK_DRIVER_FILES=$icd; break; fi
  done
fi
echo "node $(node --version), VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}, GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo none)"
NODE=$(command -v node) bash bench/gpu-report.sh "$OUT"
