#!/usr/bin/env bash
# Coarse to fine against the reproduction table: the same val photos, methods and seed,
# optimised at a working size (--max-side) and then, with --fine-iter, for a few
# iterations at full size. Compare OUT/<config>/summary.json with the full-size runs of
# tools/reproduce_bsds500.sh (same photos: both take the first N of val).
#
# Usage: bash tools/coarse_to_fine.sh OUT N METHOD [SIDE:FINE:PRECISION ...]
#
# METHOD is per-image (kanezaki2018), tip2020, dynaseg-fsf or dynaseg-scf. Each
# SIDE:FINE:PRECISION is one configuration (default: 160:0:bf16 160:50:bf16
# 240:100:bf16; SIDE full: no downscaling); they take turns photo by photo and resume
# like the reproduction table. MAX_ITER sets --max-iter (default 1000, as published).
set -euo pipefail
out=${1:?usage: coarse_to_fine.sh OUT N METHOD [SIDE:FINE:PRECISION ...]}
n=${2:?usage: coarse_to_fine.sh OUT N METHOD [SIDE:FINE:PRECISION ...]}
method=${3:?usage: coarse_to_fine.sh OUT N METHOD [SIDE:FINE:PRECISION ...]}
shift 3
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(160:0:bf16 160:50:bf16 240:100:bf16)
unsupseg=${UNSUPSEG:-.venv/bin/unsupseg}
max_iter=${MAX_ITER:-1000}
for ((i = 1; i <= n; i++)); do
  for config in "${configs[@]}"; do
    IFS=: read -r side fine precision <<<"$config"
    name="$method-$side-fine$fine-$precision"
    size=(--max-side "$side")
    [ "$side" != full ] || size=()
    $unsupseg evaluate --dataset bsds500 --split val --method "$method" "${size[@]}" \
      --fine-iter "$fine" --precision "$precision" --max-iter "$max_iter" --limit "$i" \
      --device cpu --quiet --out "$out/$name" --json "$out/$name/summary.json"
  done
done
