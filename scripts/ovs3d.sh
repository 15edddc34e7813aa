#!/usr/bin/env bash
# CCL-LGS on one 3D-OVS scene (LLFF layout + segmentations/):
#   preprocess (SAM, SAM2, CLIP) -> codebook -> RGB Gaussians -> semantic field
#   -> render the classes on the segmentation views -> 3D-OVS evaluation.
#
#   bash scripts/ovs3d.sh SCENE OUT [--stage NAME]
#
# SCENE holds images/, poses_bounds.npy and segmentations/{classes.txt,<view>/<class>.png}.
# Model weights: SAM_CKPT (sam_vit_h_4b8939.pth), SAM2_CKPT (sam2.1_hiera_large.pt); CLIP
# loads by name through open_clip (CLIP_PRETRAINED may be a local file). Each stage skips
# its work when its artifact is current; --stage runs one stage alone. METHOD picks the
# method (ccl_gated, the default, | ccl | no_pull_push | autoencoder | raw | lerf; see scripts/_method.sh).
# METHOD=lerf: LERF_PRESET (lerf | lerf-lite | cpu), DINO_CKPT (dino_deitsmall8_pretrain.pth; default: timm's cache).
# METHOD=weakseg (the 3D-OVS method): rgb -> weakseg (CLIP maps at 1/8 and DINO ViT-B/8 at 1/5 of the original
# images, WEAKSEG_ITERS (15000) steps, DINO_NEG (0.2)) -> render -> eval; DINO_CKPT (dino_vitbase8_pretrain.pth).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,15p' "$0"; exit 2; }
SCENE=$1; OUT=$2; shift 2
STAGE=all
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) STAGE=$2; shift 2 ;;
    *) echo "error: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -d "$SCENE/segmentations" ] || { echo "error: $SCENE/segmentations not found (not a 3D-OVS scene)" >&2; exit 2; }
PY=${PY:-.venv/bin/python}
SAM_CKPT=${SAM_CKPT:-ckpts/sam_vit_h_4b8939.pth}
SAM2_CKPT=${SAM2_CKPT:-ckpts/sam2.1_hiera_large.pt}
CLIP_PRETRAINED=${CLIP_PRETRAINED:-laion2b_s34b_b88k}
LERF_PRESET=${LERF_PRESET:-lerf}
FACTOR=${FACTOR:-4}
run() { [ "$STAGE" = all ] || [ "$STAGE" = "$1" ]; }
source scripts/_method.sh

if is_lerf; then
  if run lerf; then
    run_lerf "$SCENE" "$OUT" --factor "$FACTOR"
  fi
elif is_weakseg; then
  if run rgb; then
    "$PY" train.py --data "$SCENE" --out "$OUT/rgb" --factor "$FACTOR" --test-every 0 --iterations 30000 \
      --densify.refine-stop-iter 15000
  fi
  if run weakseg; then
    # the release's 1/8 (CLIP) and 1/5 (DINO) of the original images, on images already at 1/FACTOR
    run_weakseg "$OUT" --iterations "${WEAKSEG_ITERS:-15000}" --dino-neg-weight "${DINO_NEG:-0.2}" \
      --target.clip-pretrained "$CLIP_PRETRAINED" ${DINO_CKPT:+--target.dino-checkpoint "$DINO_CKPT"} \
      --target.clip-downsample "$(awk "BEGIN {print 8 / $FACTOR}")" --target.dino-downsample "$(awk "BEGIN {print 5 / $FACTOR}")"
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
    # 3D-OVS evaluates on training views: train on all of them
    "$PY" train.py --data "$SCENE" --out "$OUT/rgb" --factor "$FACTOR" --test-every 0 --iterations 30000 \
      --densify.refine-stop-iter 15000
  fi
  if run field; then
    "$PY" -m ccl_gs.field --supervision "$(supervision_dir "$OUT/preprocess" "$OUT")" --rgb-run "$OUT/rgb" --out "$OUT/field" --iterations 30000
  fi
fi
if run render; then
  "$PY" render.py --field-dir "$(query_dir "$OUT")" --out "$OUT/render" --ovs3d-data "$SCENE"
fi
if run eval; then
  "$PY" eval/ovs3d.py --renders "$OUT/render/ovs3d" --data "$(dirname "$SCENE")" \
    --scenes "$(basename "$SCENE")" --out "$OUT/eval_ovs3d.json"
fi
