#!/usr/bin/env bash
# Time per frame of the model-free nodes, from the run report's busy seconds (median of 5 runs),
# beside the same blend written as a plain libtorch expression (Debian's python3-torch, 1 and 2
# intra-op threads). Run from the repository root after scripts/build.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/blend.json" <<JSON
{"version": 1, "nodes": [
 {"id": "gen", "type": "generator.pattern", "params": {"width": 640, "height": 360, "frames": 101}},
 {"id": "blend", "type": "interpolator.blend", "inputs": {"in": "gen.out"}, "params": {"multiplier": 2}},
 {"id": "sink", "type": "encoder.ffmpeg", "inputs": {"in": "blend.out"}, "params": {"path": "$work/b.mkv", "codec": "ffv1", "overwrite": true}}
]}
JSON
cat > "$work/pattern720.json" <<JSON
{"version": 1, "nodes": [
 {"id": "gen", "type": "generator.pattern", "params": {"width": 1280, "height": 720, "frames": 150}},
 {"id": "encode", "type": "encoder.ffmpeg", "inputs": {"in": "gen.out"}, "params": {"path": "$work/p.mp4", "overwrite": true}}
]}
JSON
per_frame() {  # graph node: median ms per output frame over 5 runs
  for i in 1 2 3 4 5; do
    build/bin/reel run "$1" --no-progress --report "$work/r.json" 2>/dev/null
    /usr/bin/python3 -c "
import json, sys
n = [n for n in json.load(open('$work/r.json'))['nodes'] if n['id'] == '$2'][0]
frames = n['frames_in'] if '$2' == 'blend' else n['frames_out'] or n['frames_in']
print(n['busy_seconds'] * 1000 / frames)"
  done | sort -n | sed -n 3p
}
printf 'interpolator.blend x2, 640x360: %.2f ms per input frame (one blended frame each)\n' "$(per_frame "$work/blend.json" blend)"
printf 'generator.pattern, 640x360: %.2f ms per frame\n' "$(per_frame "$work/blend.json" gen)"
printf 'generator.pattern, 1280x720: %.2f ms per frame\n' "$(per_frame "$work/pattern720.json" gen)"
printf 'encoder.ffmpeg H.264, 1280x720: %.2f ms per frame\n' "$(per_frame "$work/pattern720.json" encode)"
/usr/bin/python3 - <<'PY'
import time, torch
a = torch.randint(0, 256, (3, 360, 640), dtype=torch.uint8)
b = torch.randint(0, 256, (3, 360, 640), dtype=torch.uint8)
for threads in (1, 2):
    torch.set_num_threads(threads)
    times = []
    for _ in range(51):
        start = time.perf_counter()
        torch.lerp(a.float(), b.float(), 0.5).round_().clamp_(0, 255).to(torch.uint8)
        times.append(time.perf_counter() - start)
    print(f"plain libtorch blend, 640x360, {threads} thread(s): {sorted(times)[25] * 1000:.2f} ms per frame")
PY
