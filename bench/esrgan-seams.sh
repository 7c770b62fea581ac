#!/usr/bin/env bash
# How far a tiled RRDBNet (realesrgan-x4plus) output is from the untiled one, against tile_pad:
# PSNR of the 8-bit outputs, 320x180 input (the benchmark's smooth pattern), tile 64.
#   bench/esrgan-seams.sh MODELS_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1/realesrgan-x4plus.param
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build/bin/reel_esrgan_bench "$model" 320 180 1 --tile 0 --dump "$work/whole.f32" > /dev/null
printf '| tile | tile_pad | PSNR vs untiled | max abs diff (of 255) |\n|---|---|---|---|\n'
for pad in 0 10 20 40; do
  build/bin/reel_esrgan_bench "$model" 320 180 1 --tile 64 --tile-pad $pad --dump "$work/tiled.f32" > /dev/null
  /usr/bin/python3 - "$work/whole.f32" "$work/tiled.f32" $pad <<'PY'
import sys
import numpy as np
a, b = (np.round(np.clip(np.fromfile(f, np.float32), 0, 1) * 255) for f in sys.argv[1:3])
mse = np.mean((a - b) ** 2)
psnr = "inf" if mse == 0 else f"{10 * np.log10(255 ** 2 / mse):.1f} dB"
print(f"| 64 | {sys.argv[3]} | {psnr} | {int(np.abs(a - b).max())} |")
PY
done
