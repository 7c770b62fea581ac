#!/usr/bin/env bash
# Builds examples/minimal-plugin out of tree against this build (find_package(reel)), then runs
# a graph with its node. Usage: minimal_plugin_test.sh EXAMPLE_DIR REEL_BUILD_DIR
set -euo pipefail
example=$1 build=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake -S "$example" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -Dreel_DIR="$build" > "$work/configure.log" 2>&1 ||
  { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" -j 2 > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
plugin_dir=$(dirname "$(find "$work/build" -name 'libreel_minimal.so' | head -n 1)")
"$REEL" --plugin-path "$plugin_dir" describe example.invert
sed "s|OUTPUT|$work/inverted.mp4|" "$example/graph.json" > "$work/graph.json"
"$REEL" --plugin-path "$plugin_dir" run "$work/graph.json" --no-progress
test -s "$work/inverted.mp4"
echo "minimal plugin: built, described and run"
