#!/usr/bin/env bash
# Peak host RSS of a run against the length of the video: the demo graph (pattern 320x180 -> resize
# x2 -> blend x2 -> H.264) and a 720p graph (pattern 1280x720 -> H.264), each at 100 and 5,000
# frames, from the run report's peak_host_rss_bytes. Run from the repository root after
# scripts/build; the 720p run at 5,000 frames takes about two minutes on 2 cores.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/720p.json" <<JSON
{"version": 1, "nodes": [
 {"id": "gen", "type": "generator.pattern", "params": {"width": 1280, "height": 720, "frames": 100}},
 {"id": "encode", "type": "encoder.ffmpeg", "inputs": {"in": "gen.out"}, "params": {"path": "$work/720p.mp4"}}
]}
JSON
peak() {  # graph frames: peak RSS in MiB
  build/bin/reel run "$1" -y --no-progress --set gen.frames="$2" --set encode.path="$work/out.mp4" \
    --report "$work/r.json" 2>/dev/null
  /usr/bin/python3 -c "import json; print(round(json.load(open('$work/r.json'))['memory']['peak_host_rss_bytes'] / 2**20, 1))"
}
printf '| graph | 100 frames | 5,000 frames | ratio |\n|---|---|---|---|\n'
for graph in graphs/demo.json "$work/720p.json"; do
  short=$(peak "$graph" 100)
  long=$(peak "$graph" 5000)
  ratio=$(/usr/bin/python3 -c "print(f'{$long / $short:.3f}')")
  printf '| %s | %s MiB | %s MiB | %s |\n' "$(basename "$graph")" "$short" "$long" "$ratio"
done
