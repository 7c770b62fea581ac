#!/usr/bin/env bash
# What each released CogVideoX variant needs in memory, by offload policy, as generator.cogvideox
# estimates it from the configs: folders with the released models' sizes (made from the tiny
# models' configs, no weights) planned with `reel plan` at the usual sizes.
#   bench/cogvideox-memory.sh [build-dir] [--keep DIR]   (REEL_SHARED_DIR: the shared folder)
# --keep makes the folders in DIR and leaves them there (the tests plan with them).
set -euo pipefail
build=${1:-build}
shared=${REEL_SHARED_DIR:-$(dirname "$0")/../../shared}
tiny=$shared/reference/cogvideox/models
if [ "${2:-}" = --keep ]; then
  work=$3
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi

make_folder() {  # name tiny-source transformer-edits(json)
  local dir=$work/$1
  mkdir -p "$dir"
  cp "$tiny/$2/model_index.json" "$dir/"
  for c in text_encoder tokenizer transformer vae scheduler; do
    mkdir -p "$dir/$c"
    cp "$tiny/$2/$c/"*.json "$dir/$c/"
    [ -f "$tiny/$2/$c/spiece.model" ] && cp "$tiny/$2/$c/spiece.model" "$dir/$c/"
  done
  chmod -R u+w "$dir"
  python3 - "$dir" "$3" <<'PY'
import json, sys
d, edits = sys.argv[1], json.loads(sys.argv[2])
def edit(path, values):
    c = json.load(open(path)); c.update(values); json.dump(c, open(path, "w"), indent=2)
edit(f"{d}/text_encoder/config.json", {"d_model": 4096, "d_ff": 10240, "d_kv": 64, "num_heads": 64, "num_layers": 24})
edit(f"{d}/vae/config.json", {"block_out_channels": [128, 256, 256, 512], "norm_num_groups": 32})
edit(f"{d}/transformer/config.json", {"attention_head_dim": 64, "time_embed_dim": 512, "text_embed_dim": 4096,
                                     "sample_height": 60, "sample_width": 90, "sample_frames": 49, **edits})
PY
}
make_folder CogVideoX-2b tiny-cogvideox-2b '{"num_attention_heads": 30, "num_layers": 30}'
make_folder CogVideoX-5b tiny-cogvideox-5b '{"num_attention_heads": 48, "num_layers": 42}'
make_folder CogVideoX-5b-I2V tiny-cogvideox-5b-i2v '{"num_attention_heads": 48, "num_layers": 42}'

cat > "$work/t2v.json" <<'JSON'
{"version": 1, "nodes": [
  {"id": "gen", "type": "generator.cogvideox", "params": {"model": "m", "prompt": "p", "device": "cpu"}},
  {"id": "save", "type": "encoder.ffmpeg", "inputs": {"in": "gen.out"}, "params": {"path": "/tmp/unused.mkv", "codec": "ffv1"}}]}
JSON
ffmpeg -v error -f lavfi -i testsrc2=size=720x480 -frames:v 1 "$work/start.png"
cat > "$work/i2v.json" <<JSON
{"version": 1, "nodes": [
  {"id": "src", "type": "source.image", "params": {"path": "$work/start.png"}},
  {"id": "gen", "type": "generator.cogvideox", "inputs": {"image": "src.image"}, "params": {"model": "m", "prompt": "p", "device": "cpu"}},
  {"id": "save", "type": "encoder.ffmpeg", "inputs": {"in": "gen.out"}, "params": {"path": "/tmp/unused.mkv", "codec": "ffv1"}}]}
JSON
echo "| variant | precision | size | offload none | model | sequential |"
echo "|---|---|---|---|---|---|"
for variant in CogVideoX-2b CogVideoX-5b CogVideoX-5b-I2V; do
  for precision in bf16 fp32; do
    for size in 720x480x49; do
      IFS=x read -r w h f <<<"$size"
      graph=$work/t2v.json
      [[ $variant == *I2V ]] && graph=$work/i2v.json
      line=$("$build/bin/reel" plan "$graph" --set gen.model="$work/$variant" --set gen.precision=$precision \
               --set gen.width=$w --set gen.height=$h --set gen.frames=$f --log-level info 2>&1 | grep -o 'needs about none.*' || true)
      none=$(sed -E 's/needs about none ([0-9.]+ GB).*/\1/' <<<"$line")
      model=$(sed -E 's/.*model ([0-9.]+ GB).*/\1/' <<<"$line")
      sequential=$(sed -E 's/.*sequential ([0-9.]+ GB).*/\1/' <<<"$line")
      echo "| $variant | $precision | $size | $none | $model | $sequential |"
    done
  done
done
