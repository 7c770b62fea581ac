#!/usr/bin/env bash
# reel's Real-ESRGAN networks against the same networks and weights in PyTorch's Python API
# (Debian's python3-torch), side by side in one run, same threads, same input, same tiling.
# "as shipped": what upscaler.esrgan does on the CPU (channels-last input, reel's allocator set-up:
# fixed glibc mmap threshold and the host tensor cache); "like for like": NCHW and the default
# allocators on both sides, whose float outputs are compared.
#   bench/esrgan-vs-pytorch.sh MODELS_DIR [REPEATS]   (REEL_BENCH_MODELS="realesrgan-x4fast" for one model)
# MODELS_DIR holds realesrgan-x4fast.param/.bin and realesrgan-x4plus.param/.bin.
set -euo pipefail
cd "$(dirname "$0")/.."
models=$1
repeats=${2:-3}
threads=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { grep '^median' | awk '{print $2}'; }

printf '| model | input | tile | reel as shipped | reel, NCHW, glibc default | PyTorch NCHW | PyTorch channels-last | shipped / PyTorch NCHW | like for like | max abs diff |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for name in ${REEL_BENCH_MODELS:-realesrgan-x4fast realesrgan-x4plus}; do
  build/bin/reel models convert "$models/$name.param" "$work/$name.safetensors" 2>/dev/null
  /usr/bin/python3 tests/fixtures/checkpoints.py from-safetensors "$work/$name.safetensors" "$work/$name.pth"
  for size in "320 180" "720 480"; do
    set -- $size
    tile=0
    # x4plus on a whole 720x480 frame needs ~6 GB and minutes per pass: tiled as people run it.
    [ "$name" = realesrgan-x4plus ] && tile=128
    reps=$repeats
    [ "$name" = realesrgan-x4plus ] && [ "$1" = 720 ] && reps=1
    run_reel() { build/bin/reel_esrgan_bench "$models/$name.param" "$1" "$2" "$reps" --tile $tile --threads "$threads" "${@:3}"; }
    run_torch() { /usr/bin/python3 bench/esrgan_pytorch.py "$work/$name.pth" "$1" "$2" "$reps" --tile $tile --threads "$threads" "${@:3}"; }
    shipped=$(run_reel "$1" "$2" --channels-last | median)
    plain=$(run_reel "$1" "$2" --glibc-default --dump "$work/out.f32" | median)
    torch_out=$(run_torch "$1" "$2" --compare "$work/out.f32")
    torch=$(echo "$torch_out" | median)
    torch_cl=$(run_torch "$1" "$2" --channels-last | median)
    diff=$(echo "$torch_out" | grep '^max abs' | awk '{print $NF}')
    ratio() { awk -v r="$1" -v t="$2" 'BEGIN { printf "%.2f", r / t }'; }
    printf '| %s | %sx%s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$1" "$2" "$tile" "$shipped" "$plain" \
      "$torch" "$torch_cl" "$(ratio "$shipped" "$torch")" "$(ratio "$plain" "$torch")" "$diff"
  done
done
