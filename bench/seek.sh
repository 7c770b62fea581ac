#!/usr/bin/env bash
# How long `source.video` takes to reach a frame deep in a clip: 24 frames read from the start,
# the middle and the end of a 200 s 720p H.264 clip (a keyframe every 2 s), in MP4 (entered at
# the keyframe before the frame) and in MKV (no frame count in its header: decoded from the
# start). Median of RUNS `reel run`s each, side by side.
#   bench/seek.sh [RUNS]     (default 5; needs build/ and the ffmpeg tool)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ffmpeg -v error -f lavfi -i testsrc2=s=1280x720:r=24:d=200 -c:v libx264 -preset ultrafast -g 48 "$work/clip.mp4"
ffmpeg -v error -i "$work/clip.mp4" -c copy "$work/clip.mkv"

median_seconds() {  # container start
  local times=()
  for ((i = 0; i < runs; i++)); do
    cat > "$work/graph.json" <<EOF
{"version": 1, "nodes": [
  {"id": "src", "type": "source.video", "params": {"path": "$work/clip.$1", "start": $2, "count": 24}},
  {"id": "enc", "type": "encoder.ffmpeg", "inputs": {"in": "src.out"},
   "params": {"path": "$work/out.mkv", "codec": "ffv1", "overwrite": true}}]}
EOF
    local t0 t1
    t0=$(date +%s.%N)
    build/bin/reel run --no-progress "$work/graph.json" 2> /dev/null
    t1=$(date +%s.%N)
    times+=("$(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }")")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p"
}

echo "| container | frames 0-23 | frames 2400-2423 | frames 4776-4799 |"
echo "|---|---|---|---|"
for container in mp4 mkv; do
  echo "| $container | $(median_seconds "$container" 0) s | $(median_seconds "$container" 2400) s | $(median_seconds "$container" 4776) s |"
done
