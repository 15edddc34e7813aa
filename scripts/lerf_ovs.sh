#!/usr/bin/env bash
# CCL-LGS on one LERF-OVS scene (COLMAP or nerfstudio layout + LangSplat labels):
#   preprocess (SAM, SAM2, CLIP) -> codebook -> RGB Gaussians -> semantic field
#   -> render the label categories on the labelled frames -> LERF-OVS evaluation.
#
#   bash scripts/lerf_ovs.sh SCENE LABELS OUT [--stage NAME]
#
# SCENE: e.g. lerf_ovs/teatime (images/ + sparse/0 or transforms.json);
# LABELS: the label root holding LABELS/<scene>/frame_XXXXX.json.
# Model weights: SAM_CKPT, SAM2_CKPT, CLIP_PRETRAINED as in scripts/ovs3d.sh. Each stage
# skips its work when its artifact is current; --stage runs one stage alone. METHOD picks
# the method (ccl_gated, the default, | ccl | no_pull_push | autoencoder | raw | lerf; see scripts/_method.sh).
# METHOD=lerf: LERF_PRESET (lerf | lerf-lite | cpu), DINO_CKPT (dino_deitsmall8_pretrain.pth; default: timm's cache).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,13p' "$0"; exit 2; }
SCENE=$1; LABELS=$2; OUT=$3; shift 3
STAGE=all
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) STAGE=$2; shift 2 ;;
    *) echo "error: unknown option $1" >&2; exit 2 ;;
  esac
done
NAME=$(basename "$SCENE")
[ -d "$LABELS/$NAME" ] || { echo "error: label folder $LABELS/$NAME not found" >&2; exit 2; }
PY=${PY:-.venv/bin/python}
SAM_CKPT=${SAM_CKPT:-ckpts/sam_vit_h_4b8939.pth}
SAM2_CKPT=${SAM2_CKPT:-ckpts/sam2.1_hiera_large.pt}
CLIP_PRETRAINED=${CLIP_PRETRAINED:-laion2b_s34b_b88k}
LERF_PRESET=${LERF_PRESET:-lerf}
run() { [ "$STAGE" = all ] || [ "$STAGE" = "$1" ]; }
source scripts/_method.sh

if is_lerf; then
  if run lerf; then
    run_lerf "$SCENE" "$OUT"
  fi
else
  if run preprocess; then
    "$PY" preprocess/run.py --data "$SCENE" --out "$OUT/preprocess" --sam-checkpoint "$SAM_CKPT" \
      --sam2-checkpoint "$SAM2_CKPT" --clip-pretrained "$CLIP_PRETRAINED"
  fi
  if run codebook; then
    run_stage2 "$OUT/preprocess" "$OUT"
  fi
  if run rgb; then
    # labelled frames are training views (the LERF-OVS protocol): train on all views
    "$PY" train.py --data "$SCENE" --out "$OUT/rgb" --test-every 0 --iterations 30000 \
      --densify.refine-stop-iter 15000
  fi
  if run field; then
    "$PY" -m ccl_gs.field --supervision "$(supervision_dir "$OUT/preprocess" "$OUT")" --rgb-run "$OUT/rgb" --out "$OUT/field" --iterations 30000
  fi
fi
if run render; then
  "$PY" render.py --field-dir "$(query_dir "$OUT")" --out "$OUT/render" --lerf-labels "$LABELS/$NAME"
fi
if run eval; then
  "$PY" eval/lerf_ovs.py --renders "$OUT/render/lerf_ovs" --labels "$LABELS" --scenes "$NAME" \
    --out "$OUT/eval_lerf_ovs.json"
  if [ -d "$OUT/render/lerf_ovs_3d" ]; then  # Gaussian fields: the 3D-selection protocol too, in its own file
    "$PY" eval/lerf_ovs.py --protocol 3d --renders "$OUT/render/lerf_ovs_3d" --labels "$LABELS" --scenes "$NAME" \
      --out "$OUT/eval_lerf_ovs_3d.json"
  fi
fi
