#!/usr/bin/env bash
# reel's Real-ESRGAN networks against the same networks and weights in PyTorch's Python API
# (Debian's python3-torch), side by side in one run, same threads, same input, same tiling.
#   bench/esrgan-vs-pytorch.sh MODELS_DIR [REPEATS]
# MODELS_DIR holds realesrgan-x4fast.param/.bin and realesrgan-x4plus.param/.bin.
set -euo pipefail
cd "$(dirname "$0")/.."
models=$1
repeats=${2:-3}
threads=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { grep '^median' | awk '{print $2}'; }

printf '| model | input | tile | reel (s/frame) | PyTorch (s/frame) | reel / PyTorch | max abs diff |\n'
printf '|---|---|---|---|---|---|---|\n'
for name in realesrgan-x4fast realesrgan-x4plus; do
  build/bin/reel models convert "$models/$name.param" "$work/$name.safetensors" 2>/dev/null
  /usr/bin/python3 tests/fixtures/checkpoints.py from-safetensors "$work/$name.safetensors" "$work/$name.pth"
  for size in "320 180" "720 480"; do
    set -- $size
    tile=0
    # x4plus on a whole 720x480 frame needs ~6 GB and minutes per pass: tiled as people run it.
    [ "$name" = realesrgan-x4plus ] && tile=128
    reps=$repeats
    [ "$name" = realesrgan-x4plus ] && [ "$1" = 720 ] && reps=1
    reel=$(build/bin/reel_esrgan_bench "$models/$name.param" "$1" "$2" "$reps" --tile $tile --threads "$threads" \
             --dump "$work/out.f32")
    torch=$(/usr/bin/python3 bench/esrgan_pytorch.py "$work/$name.pth" "$1" "$2" "$reps" --tile $tile \
              --threads "$threads" --compare "$work/out.f32")
    r=$(echo "$reel" | median)
    t=$(echo "$torch" | median)
    diff=$(echo "$torch" | grep '^max abs' | awk '{print $NF}')
    printf '| %s | %sx%s | %s | %s | %s | %s | %s |\n' "$name" "$1" "$2" "$tile" "$r" "$t" \
      "$(awk -v r="$r" -v t="$t" 'BEGIN { printf "%.2f", r / t }')" "$diff"
  done
done
