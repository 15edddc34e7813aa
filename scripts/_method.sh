# Stage 2 of the method chosen by METHOD (sourced by the scene scripts; needs PY):
#   ccl_gated (default) | ccl | no_pull_push | pull_only | push_only   contrastive codebook variants:
#       ccl is the paper's loss; ccl_gated only pulls same-label pairs whose prototypes are already
#       above the push margin, which keeps tracker identity switches from merging two objects
#       (README, Methods); the others are the paper's ablations
#   autoencoder                                  LangSplat-style language autoencoder (512 -> 3 per level)
#   raw                                          none: the field regresses the preprocess features directly
#   lerf                                         the LERF baseline: CLIP pyramid / DINO targets -> NeRF with a
#                                                language field (no masks, codebook or Gaussians)
#   weakseg                                      the 3D-OVS method: multi-scale CLIP / DINO targets -> a language
#                                                feature on the frozen RGB Gaussians, trained against the scene's
#                                                class names (no masks or codebook)
# The semantic field's --supervision is the stage-2 folder, whose kind selects the method; render.py
# reads any trained run (a field or a LERF run) from query_dir.
METHOD=${METHOD:-ccl_gated}
case "$METHOD" in
  ccl|ccl_gated|no_pull_push|pull_only|push_only|autoencoder|raw|lerf|weakseg) ;;
  *) echo "error: unknown METHOD=$METHOD (ccl | ccl_gated | no_pull_push | pull_only | push_only | autoencoder | raw | lerf | weakseg)" >&2
     exit 2 ;;
esac

# supervision_dir PRE OUT: the folder the field trains from.
supervision_dir() {
  case "$METHOD" in
    raw) echo "$1" ;;
    autoencoder) echo "$2/autoencoder" ;;
    *) echo "$2/codebook" ;;
  esac
}

# run_stage2 PRE OUT [codebook options...]
run_stage2() {
  local pre=$1 out=$2
  shift 2
  case "$METHOD" in
    raw) echo "[stage 2] METHOD=raw: no stage 2, the field reads $pre" ;;
    autoencoder) "$PY" -m ccl_gs.autoencoder --preprocessed "$pre" --out "$out/autoencoder" ;;
    *) "$PY" -m ccl_gs.codebook --preprocessed "$pre" --out "$out/codebook" --variant "$METHOD" "$@" ;;
  esac
}

# is_lerf: the LERF baseline replaces preprocess, stage 2, RGB Gaussians and the field by one NeRF stage.
is_lerf() { [ "$METHOD" = lerf ]; }

# is_weakseg: the 3D-OVS method replaces preprocess, stage 2 and the field by one stage on the RGB Gaussians.
is_weakseg() { [ "$METHOD" = weakseg ]; }

# query_dir OUT: the trained run render.py queries.
query_dir() {
  if is_lerf; then echo "$1/lerf"; elif is_weakseg; then echo "$1/weakseg"; else echo "$1/field"; fi
}

# run_weakseg OUT [options...]: the 3D-OVS method on the RGB run OUT/rgb (targets computed into OUT/weakseg/targets);
# the class names come from the RGB run's scene (segmentations/classes.txt).
run_weakseg() {
  local out=$1
  shift
  "$PY" -m ccl_gs.weakseg --rgb-run "$out/rgb" --out "$out/weakseg" "$@"
}

# run_lerf SCENE OUT [options...]: the LERF run of a real scene (CLIP weights CLIP_PRETRAINED, DINO weights
# DINO_CKPT, preset LERF_PRESET); the labelled / segmented frames are training views, so it trains on all views.
run_lerf() {
  local scene=$1 out=$2
  shift 2
  "$PY" -m ccl_gs.lerf --data "$scene" --out "$out/lerf" --preset "${LERF_PRESET:-lerf}" --test-every 0 \
    --target.clip-pretrained "$CLIP_PRETRAINED" ${DINO_CKPT:+--target.dino-checkpoint "$DINO_CKPT"} "$@"
}
