#!/usr/bin/env bash
# `reel shard` on this machine's one-node Slurm (scripts/slurm-local): wall time of one 600-frame
# upscale (Real-ESRGAN x4fast) + interpolate x2 (RIFE v4.6) job run whole, as 1 shard and as 4
# shards (submit to joined file), and what a shard costs besides its frames: the plan (probing),
# the start of a shard deep in the source (seek), a shard's model loads, and the join.
# Median of RUNS each, side by side in one run.
#   bench/shard-slurm.sh [RUNS]   (default 3; needs build/, root or sudo, the shared models)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${1:-3}
shared=${REEL_SHARED_DIR:-$root/../shared}
work=$(mktemp -d)
trap 'scripts/slurm-local stop "$work/cluster" > /dev/null 2>&1 || true; rm -rf "$work"' EXIT
export PATH="$root/build/bin:$PATH" REEL_PLUGIN_PATH=$root/build/lib/reel/plugins
export REEL_PLUGIN_CACHE=$work/plugin-cache.json REEL_MODELS_PATH=$shared/models/realesrgan

ffmpeg -v error -f lavfi -i "testsrc2=s=32x32:r=24,noise=alls=12:allf=t" -frames:v 600 -c:v libx264 -qp 0 -g 48 "$work/clip.mp4"
tar -xf "$shared/reference/rife/weights.tar.xz" -C "$work" flownet.pkl
cat > "$work/graph.json" <<EOF
{"version": 1, "nodes": [
  {"id": "src", "type": "source.video", "params": {"path": "$work/clip.mp4"}},
  {"id": "up", "type": "upscaler.esrgan", "inputs": {"in": "src.out"}, "params": {"model": "realesrgan-x4fast"}},
  {"id": "interp", "type": "interpolator.rife", "inputs": {"in": "up.out"}, "params": {"model": "$work/flownet.pkl"}},
  {"id": "enc", "type": "encoder.ffmpeg", "inputs": {"in": "interp.out"},
   "params": {"path": "$work/out/video.mkv", "codec": "ffv1"}}]}
EOF
scripts/slurm-local start "$work/cluster" > /dev/null
export SLURM_CONF=$work/cluster/slurm.conf

now() { date +%s.%N; }
seconds() { awk "BEGIN { printf \"%.2f\", $2 - $1 }"; }
median() { sort -n | sed -n "$(((runs + 1) / 2))p"; }

# Until job $1 has ended (polled every 0.1 s: `sbatch --wait` polls at growing intervals, up to
# tens of seconds late).
wait_ended() {
  while scontrol show job "$1" | grep -qE "JobState=(PENDING|CONFIGURING|RUNNING|COMPLETING)"; do sleep 0.1; done
  scontrol show job "$1" | grep -q "JobState=COMPLETED" || { echo "job $1 failed" >&2; exit 1; }
}

# Submit to joined file: the array (one core per task), the join after it.
sharded() {  # shards cpus-per-task
  rm -rf "$work/out" && mkdir -p "$work/out"
  reel shard plan "$work/graph.json" --shards "$1" -o "$work/plan.json" 2> /dev/null
  local t0 array join
  t0=$(now)
  array=$(sbatch --parsable --array=0-$(($1 - 1)) --cpus-per-task="$2" --chdir="$work" --output=/dev/null \
    deploy/slurm/shard.sbatch "$work/plan.json")
  join=$(sbatch --parsable --dependency="afterok:$array" --chdir="$work" --output=/dev/null deploy/slurm/join.sbatch \
    "$work/plan.json")
  wait_ended "$join"
  seconds "$t0" "$(now)"
}

whole=() one=() four=() plan=() join=()
for ((i = 0; i < runs; i++)); do
  t0=$(now)
  reel run --no-progress -y "$work/graph.json" --set "enc.path=$work/whole.mkv" 2> /dev/null
  whole+=("$(seconds "$t0" "$(now)")")
  one+=("$(sharded 1 2)")
  four+=("$(sharded 4 1)")
  t0=$(now)
  reel shard plan "$work/graph.json" --shards 4 -o "$work/plan.json" 2> /dev/null
  plan+=("$(seconds "$t0" "$(now)")")
  t0=$(now)
  reel shard join "$work/plan.json" -y -o "$work/joined.mkv" 2> /dev/null
  join+=("$(seconds "$t0" "$(now)")")
done
cmp <(ffmpeg -v error -i "$work/whole.mkv" -f framemd5 - | grep -v '^#' | cut -d, -f6) \
    <(ffmpeg -v error -i "$work/out/video.mkv" -f framemd5 - | grep -v '^#' | cut -d, -f6) ||
  { echo "the 4-shard output differs from the whole run" >&2; exit 1; }

# A shard's fixed costs: 2 source frames read from the start and from the end of the clip
# (source -> encoder only: the seek), and the same through the models (their loads).
fixed() {  # start graph
  local times=() t0
  for ((i = 0; i < runs; i++)); do
    t0=$(now)
    reel run --no-progress -y "$work/$2" --set src.start="$1" --set src.count=2 --set "enc.path=$work/fixed.mkv" 2> /dev/null
    times+=("$(seconds "$t0" "$(now)")")
  done
  printf '%s\n' "${times[@]}" | median
}
sed -e 's/"model": "realesrgan-x4fast"/"scale": 1/' -e 's/"upscaler.esrgan"/"upscaler.resize"/' \
  -e 's/"interpolator.rife"/"interpolator.blend"/' -e "s|\"model\": \"$work/flownet.pkl\"||" \
  "$work/graph.json" > "$work/light.json"

echo "| 600 frames -> 1199 (32x32 -> 128x128, x4fast + RIFE x2, FFV1) | median of $runs |"
echo "|---|---|"
echo "| \`reel run\`, whole | $(printf '%s\n' "${whole[@]}" | median) s |"
echo "| 1 shard on Slurm (2 cores), submit to joined | $(printf '%s\n' "${one[@]}" | median) s |"
echo "| 4 shards on Slurm (1 core each, 2 at a time), submit to joined | $(printf '%s\n' "${four[@]}" | median) s |"
echo "| \`reel shard plan\` (probe, 4 shards) | $(printf '%s\n' "${plan[@]}" | median) s |"
echo "| \`reel shard join\` (4 parts, 1199 frames) | $(printf '%s\n' "${join[@]}" | median) s |"
echo "| 2 frames from frame 0, no models | $(fixed 0 light.json) s |"
echo "| 2 frames from frame 598, no models | $(fixed 598 light.json) s |"
echo "| 2 frames from frame 0, with the models' loads | $(fixed 0 graph.json) s |"
