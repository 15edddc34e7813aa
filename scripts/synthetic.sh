#!/usr/bin/env bash
# CCL-LGS end to end on a generated synthetic scene (the built-in default):
#   generate -> preprocess (simulated masks / tracks, oracle encoder) -> codebook
#   -> RGB Gaussians -> semantic field -> render -> LERF-OVS evaluation.
#
#   bash scripts/synthetic.sh [OUT] [--stage NAME]
#
# Every stage skips its work when its artifact is current (the CLIs check the
# manifests), so re-running resumes after a kill. --stage runs one stage alone.
# Options by environment: SEED (0), SIZE (128), VIEWS (24), SIM_LEVEL (1),
# METHOD (ccl_gated | ccl | no_pull_push | pull_only | push_only | autoencoder | raw | lerf, see
# scripts/_method.sh), RGB_ITERS (1500), FIELD_ITERS (800), LERF_ITERS (the cpu preset's 1500).
# METHOD=lerf runs generate -> lerf (targets from the CLIP / DINO oracles, NeRF) -> render -> eval.
# METHOD=weakseg (the 3D-OVS method) runs on the scene's 3D-OVS layout: generate -> rgb (all views) -> weakseg
# (targets from the oracles; CLIP maps at 1/2, DINO stand-in at full size; WEAKSEG_ITERS, default 1500) -> render
# -> the 3D-OVS evaluation (eval_ovs3d.json).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=outputs/demo
STAGE=all
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) STAGE=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "error: unknown option $1" >&2; exit 2 ;;
    *) OUT=$1; shift ;;
  esac
done
PY=${PY:-.venv/bin/python}
SEED=${SEED:-0}; SIZE=${SIZE:-128}; VIEWS=${VIEWS:-24}; SIM_LEVEL=${SIM_LEVEL:-1}
RGB_ITERS=${RGB_ITERS:-1500}; FIELD_ITERS=${FIELD_ITERS:-800}
NAME=synthetic_s${SEED}
DATA=$OUT/data
SCENE=$DATA/lerf_ovs/$NAME
LABELS=$DATA/lerf_ovs/label/$NAME
LAYOUT=lerf
export HF_HUB_OFFLINE=1
run() { [ "$STAGE" = all ] || [ "$STAGE" = "$1" ]; }
source scripts/_method.sh
if is_weakseg; then  # the 3D-OVS layout: classes.txt and segmentations/ of the labelled views
  SCENE=$DATA/3dovs/$NAME; LAYOUT=3dovs
fi

if run generate; then
  if { [ -f "$SCENE/transforms.json" ] || [ -f "$SCENE/poses_bounds.npy" ]; } && [ -d "$SCENE/sim_tracks" ]; then
    echo "[generate] $SCENE exists"
  else
    "$PY" -m ccl_gs.data.synthetic --out "$DATA" --layout "$LAYOUT" --size "$SIZE" --views "$VIEWS" \
      --seed "$SEED" --path forward --sim.level "$SIM_LEVEL"
  fi
fi
if is_lerf; then
  if run lerf; then
    "$PY" -m ccl_gs.lerf --data "$SCENE" --out "$OUT/lerf" --preset cpu ${LERF_ITERS:+--iterations "$LERF_ITERS"} \
      --target.clip-encoder oracle --target.dino-encoder oracle_dino --target.oracle.scene-root "$SCENE"
  fi
elif is_weakseg; then
  if run rgb; then
    "$PY" train.py --data "$SCENE" --out "$OUT/rgb" --iterations "$RGB_ITERS" --sh-degree 2 --test-every 0 \
      --sh-degree-interval 500 --densify.refine-start-iter 200 --densify.refine-stop-iter 1000
  fi
  if run weakseg; then
    run_weakseg "$OUT" --iterations "${WEAKSEG_ITERS:-1500}" --patch-cells 16 --target.clip-encoder oracle \
      --target.dino-encoder oracle_dino --target.clip-downsample 2 --target.dino-downsample 1
  fi
else
  if run preprocess; then
    "$PY" preprocess/run.py --data "$SCENE" --out "$OUT/preprocess" --mask-source precomputed \
      --track-source precomputed --encoder oracle --oracle.scene-root "$SCENE" --merge.min-visible-area 10
  fi
  if run codebook; then
    run_stage2 "$OUT/preprocess" "$OUT" --iterations 1000
  fi
  if run rgb; then
    "$PY" train.py --data "$SCENE" --out "$OUT/rgb" --iterations "$RGB_ITERS" --sh-degree 2 \
      --sh-degree-interval 500 --densify.refine-start-iter 200 --densify.refine-stop-iter 1000
  fi
  if run field; then
    "$PY" -m ccl_gs.field --supervision "$(supervision_dir "$OUT/preprocess" "$OUT")" --rgb-run "$OUT/rgb" --out "$OUT/field" \
      --iterations "$FIELD_ITERS"
  fi
fi
if is_weakseg; then
  if run render; then
    "$PY" render.py --field-dir "$(query_dir "$OUT")" --out "$OUT/render" --ovs3d-data "$SCENE"
  fi
  if run eval; then
    "$PY" eval/ovs3d.py --renders "$OUT/render/ovs3d" --data "$DATA/3dovs" --scenes "$NAME" --out "$OUT/eval_ovs3d.json"
  fi
  exit 0
fi
if run render; then
  "$PY" render.py --field-dir "$(query_dir "$OUT")" --out "$OUT/render" --lerf-labels "$LABELS"
fi
if run eval; then
  "$PY" eval/lerf_ovs.py --renders "$OUT/render/lerf_ovs" --labels "$DATA/lerf_ovs/label" \
    --scenes "$NAME" --out "$OUT/eval_lerf_ovs.json"
  if [ -d "$OUT/render/lerf_ovs_3d" ]; then  # Gaussian fields: the 3D-selection protocol too, in its own file
    "$PY" eval/lerf_ovs.py --protocol 3d --renders "$OUT/render/lerf_ovs_3d" --labels "$DATA/lerf_ovs/label" \
      --scenes "$NAME" --out "$OUT/eval_lerf_ovs_3d.json"
  fi
fi
