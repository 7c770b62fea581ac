#!/usr/bin/env bash
# reel's CogVideoX components against the reference implementation in Python (diffusers'
# AutoencoderKLCogVideoX; the T5 encoder of shared/tools/diffusers-reference) on one diffusers
# folder, side by side in one run: same inputs (same seeds, same libtorch generator), 2 threads.
#   DIFFUSERS_SRC=<diffusers checkout>/src COGREF_PYTHONPATH=<packaging, filelock, tqdm, regex, PIL>
#   bench/cogvideox-vs-diffusers.sh FOLDER [REPEATS]
# (shared/tools/diffusers-reference/README.md says how to get both.)
set -euo pipefail
cd "$(dirname "$0")/.."
folder=$1
repeats=${2:-3}
field() { grep "^$1" | awk '{print $2}'; }

printf '| component | input | reel s | reference s | reel / reference | same output |\n|---|---|---|---|---|---|\n'
run() {
  local label=$1 input=$2
  shift 2
  local ours theirs
  ours=$(build/bin/reel_cogvideox_bench "$folder" "$@")
  theirs=$(/usr/bin/python3 bench/cogvideox_diffusers.py "$folder" "$@" 2>/dev/null)
  local a b
  a=$(echo "$ours" | field median)
  b=$(echo "$theirs" | field median)
  same=no
  [ "$(echo "$ours" | field checksum)" = "$(echo "$theirs" | field checksum)" ] && same="yes (checksum)"
  printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$input" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')" "$same"
}
run "T5 encoder" "2 x 226 tokens" t5 "$((repeats * 10))"
run "VAE decode" "4 latent frames, 96x128 out" decode 4 12 16 "$repeats"
run "VAE decode" "13 latent frames, 96x128 out" decode 13 12 16 "$repeats"
run "VAE encode" "13 frames 96x128" encode 13 96 128 "$repeats"
run "VAE encode" "49 frames 96x128" encode 49 96 128 "$repeats"
run "denoising step" "13 latent frames 32x48 (256x384)" step 13 32 48 "$repeats"
run "denoising step" "13 latent frames 60x90 (480x720)" step 13 60 90 "$repeats"
