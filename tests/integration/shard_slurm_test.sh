#!/usr/bin/env bash
# `reel shard` on a real Slurm: a one-machine cluster from Debian's packages (scripts/slurm-local),
# the job files users submit (deploy/slurm), and the proof that a split run is the single run:
#
#   1. A 600-frame clip, upscaled by Real-ESRGAN (the real x4fast weights) and interpolated x2 by
#      RIFE, encoded losslessly (FFV1), in one run: the reference.
#   2. The same graph planned in 4 shards, submitted as `sbatch --array` held, released out of
#      order (3, 1, then 0 and 2); shard 1 is killed midway by `scontrol requeue` and runs again;
#      the join job depends on the array (afterok). Shard 2 is submitted a second time afterwards
#      and must do nothing.
#   3. The joined file decodes to the reference's frames exactly (ffmpeg's framemd5: an
#      independent decoder), with ffprobe's frame count and rate exact.
#   4. The same clip resized and blended x2 into H.264 parts, joined: every frame once, evenly
#      spaced across the seams.
#
# Usage: shard_slurm_test.sh REEL PLUGIN_DIR SOURCE_DIR. Fails (never skips) when Slurm cannot start.
set -euo pipefail

reel=$1
plugin_dir=$2
source_dir=$3
shared=${REEL_SHARED_DIR:-$source_dir/../shared}
if [ ! -f "$shared/models/realesrgan/realesrgan-x4fast.param" ] || [ ! -f "$shared/reference/rife/weights.tar.xz" ]; then
  echo "*** SKIPPED: the shared models are missing: set REEL_SHARED_DIR ***"
  exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/reel-slurm-test.XXXXXX")
cluster=$work/cluster
cleanup() {
  "$source_dir/scripts/slurm-local" stop "$cluster" >/dev/null 2>&1 || true
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for log in "$work"/logs/*.log; do [ -f "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }; done
  exit 1
}
step() { echo "== $* ($(date +%T))"; }

# What every task (and this script) runs with: this build's reel, plugins and models.
export PATH="$(dirname "$reel"):$PATH"
export REEL_PLUGIN_PATH=$plugin_dir
export REEL_PLUGIN_CACHE=$work/plugin-cache.json
export REEL_MODELS_PATH=$shared/models/realesrgan
mkdir -p "$work/logs" "$work/out"
cd "$work"

step "the clip and the single run"
ffmpeg -v error -f lavfi -i "testsrc2=s=24x24:r=24,noise=alls=12:allf=t" -frames:v 600 \
  -c:v libx264 -qp 0 -g 48 clip.mp4
tar -xf "$shared/reference/rife/weights.tar.xz" flownet.pkl
cat > graph.json <<EOF
{"version": 1, "nodes": [
  {"id": "src", "type": "source.video", "params": {"path": "$work/clip.mp4"}},
  {"id": "up", "type": "upscaler.esrgan", "inputs": {"in": "src.out"}, "params": {"model": "realesrgan-x4fast"}},
  {"id": "interp", "type": "interpolator.rife", "inputs": {"in": "up.out"},
   "params": {"model": "$work/flownet.pkl", "multiplier": 2}},
  {"id": "enc", "type": "encoder.ffmpeg", "inputs": {"in": "interp.out"},
   "params": {"path": "$work/out/upscaled.mkv", "codec": "ffv1"}}]}
EOF
reel run --no-progress graph.json --set "enc.path=$work/whole.mkv" > logs/whole.log 2>&1 || fail "the single run failed"

step "a one-machine Slurm cluster"
"$source_dir/scripts/slurm-local" start "$cluster" > logs/cluster-start.log 2>&1 ||
  { cat logs/cluster-start.log >&2; fail "Slurm did not start (see above)"; }
export SLURM_CONF=$cluster/slurm.conf

job_field() { scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
# Waits until job $1 is in one of the states $2 (a regex), at most $3 seconds.
wait_state() {
  local deadline=$((SECONDS + $3)) state=""
  while [ $SECONDS -lt $deadline ]; do
    state=$(job_field "$1" JobState)
    [[ $state =~ ^($2)$ ]] && return 0
    sleep 0.2
  done
  fail "job $1 is $state, not $2, after $3 s"
}

step "plan 4 shards; submit the array held and the join after it"
reel shard plan graph.json --shards 4 -o plan.json > logs/plan.log 2>&1 || fail "shard plan failed"
array=$(sbatch --parsable --hold --array=0-3 --chdir="$work" --open-mode=append \
  --output="$work/logs/shard-%a.log" "$source_dir/deploy/slurm/shard.sbatch" "$work/plan.json")
join=$(sbatch --parsable --dependency="afterok:$array" --chdir="$work" --output="$work/logs/join.log" \
  "$source_dir/deploy/slurm/join.sbatch" "$work/plan.json")

step "release shard 3, then 1; kill shard 1 midway (requeue)"
scontrol release "${array}_3"
wait_state "${array}_3" RUNNING 60
scontrol release "${array}_1"
wait_state "${array}_1" RUNNING 60
deadline=$((SECONDS + 60))
until grep -q "running shard 1 of 4" logs/shard-1.log 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "shard 1 did not start its run"
  sleep 0.2
done
sleep 3  # frames are flowing into the part's temporary file
scontrol requeue "${array}_1"
wait_state "${array}_1" "PENDING|REQUEUED" 30
part1=$(python3 -c "import json; print(json.load(open('plan.json'))['shards'][1]['part'])")
[ ! -e "$part1" ] && [ ! -e "$part1.done.json" ] || fail "shard 1, killed midway, left $part1 or its done record"

step "release shards 0 and 2 and shard 1's rerun; wait for the join"
scontrol release "${array}_0" "${array}_2"
# Shard 1 starts again once its old credential has expired (cred_expire, scripts/slurm-local).
ended="COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY"
for i in 0 1 2 3; do
  wait_state "${array}_$i" "$ended" 600
  [ "$(job_field "${array}_$i" JobState)" = COMPLETED ] || fail "shard $i ended $(job_field "${array}_$i" JobState)"
done
wait_state "$join" "$ended" 120
[ "$(job_field "$join" JobState)" = COMPLETED ] || fail "the join job ended $(job_field "$join" JobState)"
[ "$(job_field "${array}_1" Restarts)" = 1 ] || fail "shard 1 was not restarted once"
[ "$(grep -c "running shard 1 of 4" logs/shard-1.log)" = 2 ] || fail "shard 1 did not run twice"
# Out of order: shard 3 started before shard 0.
[ "$(job_field "${array}_3" StartTime)" \< "$(job_field "${array}_0" StartTime)" ] ||
  fail "shard 3 did not start before shard 0"

step "shard 2 again: nothing to do"
part2=$(python3 -c "import json; print(json.load(open('plan.json'))['shards'][2]['part'])")
before=$(stat -c %Y.%s "$part2")
again=$(sbatch --parsable --array=2 --chdir="$work" --output="$work/logs/shard-2-again.log" \
  "$source_dir/deploy/slurm/shard.sbatch" "$work/plan.json")
wait_state "$again" "$ended" 120
[ "$(job_field "$again" JobState)" = COMPLETED ] || fail "shard 2 again ended $(job_field "$again" JobState)"
grep -q "is done already" logs/shard-2-again.log || fail "shard 2, run again, did not say it is done"
[ "$(stat -c %Y.%s "$part2")" = "$before" ] || fail "shard 2, run again, rewrote its part"
reel shard status plan.json > logs/status.log || fail "shard status does not say all are done"
grep -q "4 of 4 done" logs/status.log || fail "shard status: $(cat logs/status.log)"

step "the joined file is the single run, frame for frame"
frame_hashes() { ffmpeg -v error -i "$1" -f framemd5 - | grep -v '^#' | awk -F', *' '{print $6}'; }
frame_hashes whole.mkv > whole.md5
frame_hashes out/upscaled.mkv > joined.md5
[ "$(wc -l < whole.md5)" = 1199 ] || fail "the single run has $(wc -l < whole.md5) frames, not 1199"
cmp -s whole.md5 joined.md5 || fail "the joined frames differ from the single run's: $(diff whole.md5 joined.md5 | head -n 5)"
probe=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames,r_frame_rate,width,height \
  -of csv=p=0 out/upscaled.mkv)
[ "$probe" = "96,96,48/1,1199" ] || fail "ffprobe says $probe, not 96,96,48/1,1199"

step "H.264 parts on Slurm: every frame once across the seams"
sed -e 's/"upscaler.esrgan"/"upscaler.resize"/' -e 's/"model": "realesrgan-x4fast"/"scale": 4/' \
  -e 's/"interpolator.rife"/"interpolator.blend"/' -e "s|\"model\": \"$work/flownet.pkl\", ||" \
  -e 's|"codec": "ffv1"|"preset": "ultrafast"|' -e 's|upscaled.mkv|blended.mp4|' graph.json > h264.json
reel shard plan h264.json --shards 4 -o h264-plan.json > logs/h264-plan.log 2>&1 || fail "the H.264 plan failed"
array=$(sbatch --parsable --array=0-3 --chdir="$work" --output="$work/logs/h264-%a.log" \
  "$source_dir/deploy/slurm/shard.sbatch" "$work/h264-plan.json")
join=$(sbatch --parsable --dependency="afterok:$array" --chdir="$work" --output="$work/logs/h264-join.log" \
  "$source_dir/deploy/slurm/join.sbatch" "$work/h264-plan.json")
for i in 0 1 2 3; do
  wait_state "${array}_$i" "$ended" 300
  [ "$(job_field "${array}_$i" JobState)" = COMPLETED ] || fail "H.264 shard $i ended $(job_field "${array}_$i" JobState)"
done
wait_state "$join" "$ended" 120
[ "$(job_field "$join" JobState)" = COMPLETED ] || fail "the H.264 join ended $(job_field "$join" JobState)"
probe=$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=codec_name,nb_read_frames,r_frame_rate \
  -of csv=p=0 out/blended.mp4)
[ "$probe" = "h264,48/1,1199" ] || fail "ffprobe says $probe, not h264,48/1,1199"
# Every frame once, evenly spaced: one step between all neighbouring timestamps, none repeated.
ffprobe -v error -select_streams v:0 -show_entries frame=pts -of default=nw=1:nk=1 out/blended.mp4 | sort -n > pts.txt
[ "$(wc -l < pts.txt)" = 1199 ] || fail "the H.264 join decodes to $(wc -l < pts.txt) frames"
steps=$(awk 'NR > 1 { print $1 - last } { last = $1 }' pts.txt | sort -u)
[ "$(echo "$steps" | wc -l)" = 1 ] && [ "$steps" -gt 0 ] || fail "uneven frame times in the H.264 join: $steps"

step "passed"
