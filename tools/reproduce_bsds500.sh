#!/usr/bin/env bash
# The reproduction table: per-image methods at full resolution with their published
# settings (at most 1000 iterations, stopping at 3 labels) on BSDS500 val, never test.
#
# Usage: bash tools/reproduce_bsds500.sh OUT N [CONFIG ...]
#
# CONFIG is any of kanezaki2018 tip2020 dynaseg-fsf dynaseg-scf fast (default: all five;
# fast is segment's default, kanezaki2018 with --precision auto). The configurations take
# turns photo by photo, so that an interrupted run leaves every one with about as many
# photos; each `evaluate` skips the photos already in OUT/<config>/per_image.csv, so a
# rerun resumes. Set OMP_NUM_THREADS to choose the threads of each run, and UNSUPSEG to
# the command (default: .venv/bin/unsupseg).
set -euo pipefail
out=${1:?usage: reproduce_bsds500.sh OUT N [CONFIG ...]}
n=${2:?usage: reproduce_bsds500.sh OUT N [CONFIG ...]}
shift 2
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(kanezaki2018 tip2020 dynaseg-fsf dynaseg-scf fast)
unsupseg=${UNSUPSEG:-.venv/bin/unsupseg}
for ((i = 1; i <= n; i++)); do
  for config in "${configs[@]}"; do
    case $config in
      kanezaki2018) args=(--method per-image --precision fp32) ;;
      tip2020 | dynaseg-fsf | dynaseg-scf) args=(--method "$config" --precision fp32) ;;
      fast) args=(--method per-image --precision auto) ;;
      *) echo "unknown configuration: $config" >&2; exit 2 ;;
    esac
    $unsupseg evaluate --dataset bsds500 --split val "${args[@]}" --limit "$i" \
      --device cpu --quiet --out "$out/$config" --json "$out/$config/summary.json"
  done
done
