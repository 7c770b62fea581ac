#!/usr/bin/env bash
# The worker soak at full length: 1,000 jobs (REEL_SOAK_JOBS to change it) through one `reel worker`,
# over 40% of them failing (out of memory, plugin exceptions, bad input, invalid graphs, bad
# overrides, hostile messages, frames that break the declared stream) and a tenth cancelled.
# Prints the job counts and the worker's RSS, descriptors, threads and child processes before and
# after. Run from the repository root after scripts/build.
set -euo pipefail
export REEL_SOAK_JOBS="${REEL_SOAK_JOBS:-1000}"
build/bin/reel_integration_tests --gtest_filter='WorkerSoak.*' 2>&1 | grep -E '^soak:|OK|FAILED'
