#!/usr/bin/env bash
# reel's IFNet v4.6 against the same network and weights in PyTorch's Python API (Debian's
# python3-torch), side by side in one run: same threads, same pair of frames (two consecutive
# frames of ffmpeg's testsrc2), pairs per second at t = 0.5, and the peak memory of one pair.
#   bench/rife-vs-pytorch.sh WEIGHTS.pth [REPEATS]
# WEIGHTS.pth: an IFNet v4.6 checkpoint, e.g. ifnet_cpu.pth from shared/reference/rife/weights.tar.xz.
set -euo pipefail
cd "$(dirname "$0")/.."
weights=$1
repeats=${2:-5}
threads=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

field() { grep "^$1" | awk '{print $NF}'; }
median() { grep '^median' | awk '{print $2}'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1e6 }'; }

printf '| input | scale | reel pairs/s | reel channels-last pairs/s | PyTorch pairs/s | reel / PyTorch time | reel peak MB/pair | PyTorch peak MB/pair | max abs diff |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for size in "720 480" "1440 960"; do
  set -- $size
  ffmpeg -v error -y -f lavfi -i "testsrc2=size=${1}x${2}:rate=8" -frames:v 2 -f rawvideo -pix_fmt rgb24 "$work/pair.rgb"
  for scale in 1 0.5; do
    reel_out=$(build/bin/reel_rife_bench "$weights" "$work/pair.rgb" "$1" "$2" "$scale" "$repeats" --threads "$threads" --dump "$work/out.f32")
    reel_cl=$(build/bin/reel_rife_bench "$weights" "$work/pair.rgb" "$1" "$2" "$scale" "$repeats" --threads "$threads" --channels-last | median)
    torch_out=$(/usr/bin/python3 bench/rife_pytorch.py "$weights" "$work/pair.rgb" "$1" "$2" "$scale" "$repeats" --threads "$threads" --compare "$work/out.f32")
    reel=$(echo "$reel_out" | median)
    torch=$(echo "$torch_out" | median)
    rate() { awk -v s="$1" 'BEGIN { printf "%.2f", 1 / s }'; }
    ratio=$(awk -v r="$reel" -v t="$torch" 'BEGIN { printf "%.2f", r / t }')
    printf '| %sx%s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$scale" "$(rate "$reel")" "$(rate "$reel_cl")" \
      "$(rate "$torch")" "$ratio" "$(mb "$(echo "$reel_out" | field pair_peak_bytes)")" \
      "$(mb "$(echo "$torch_out" | field pair_peak_bytes)")" "$(echo "$torch_out" | field 'max abs diff')"
  done
done
