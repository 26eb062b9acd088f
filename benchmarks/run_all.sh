#!/usr/bin/env bash
# The main job: set the environment up, then rebuild the paper's tables and figures on a profile.
#
#   bash benchmarks/run_all.sh [smoke|demo|paper]     (default: demo)
#
# Profiles change sizes and data, never code paths:
#   smoke  CI-sized, minutes;
#   demo   real small data this machine has offline (Debian packages), 2 CPU cores;
#   paper  the paper's data and schedules, on GPUs (see README: data paths and multi-GPU launchers).
# Results go to results/<profile>/ (records, tables, figures, benchmark figures).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILE="${1:-${PSKD_PROFILE:-demo}}"
case "$PROFILE" in
    smoke|demo|paper) ;;
    *) echo "run_all.sh: unknown profile '$PROFILE'; use smoke, demo or paper" >&2; exit 2 ;;
esac
bash "$REPO/benchmarks/setup_env.sh"
PY="${PSKD_VENV:-$REPO/.venv}/bin/python"
OUT="$REPO/results/$PROFILE"
mkdir -p "$OUT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
cd "$REPO"

echo "== [$PROFILE] common/: prediction store, DDP memory and metric figures"
QUICK=()
[ "$PROFILE" = smoke ] && QUICK=(--quick)
"$PY" -m benchmarks.bench_common "${QUICK[@]}" --out "$OUT/bench_common.json"

echo
echo "== [$PROFILE] classification: baseline, label smoothing and PS-KD"
CLS_OUT="$OUT/classification"
CLS_ARGS=()
[ "$PROFILE" = smoke ] && CLS_ARGS=(data.train_size=2000 data.test_size=2000 optim.epochs=2 "optim.milestones=[1]")
train_classifier() {  # config files and key=value overrides, then those of the profile (CLS_ARGS)
    local configs=()
    for c in "$@"; do
        if [[ "$c" == *=* ]]; then configs+=("$c"); else configs+=(--config "$c"); fi
    done
    if [ "$PROFILE" = paper ]; then
        # Every GPU of this node through torchrun; for several nodes run this on each with
        # --nnodes, --node_rank and --rdzv_endpoint (see README).
        "${PSKD_VENV:-$REPO/.venv}/bin/torchrun" --nproc_per_node="${PSKD_GPUS:-$(nvidia-smi -L | wc -l)}" \
            -m classification.train --continue "${configs[@]}" output_dir="$CLS_OUT" "${CLS_ARGS[@]}"
    else
        "$PY" -m classification.train --continue "${configs[@]}" output_dir="$CLS_OUT" "${CLS_ARGS[@]}"
    fi
}
if [ "$PROFILE" = paper ]; then
    for method in baseline ls ps_kd cs_kd; do
        train_classifier cifar100_preact_resnet18 "methods/$method" name="cifar100-preact_resnet18-$method"
    done
else
    # The runs are independent: two at a time, one thread each, on a 2-core machine.
    pids=()
    for method in baseline ls ps_kd; do
        train_classifier "demo/$method" > "$OUT/$method.log" 2>&1 &
        pids+=($!)
        if [ ${#pids[@]} -ge "${PSKD_JOBS:-2}" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    tail -n 1 "$OUT"/*.log
fi
"$PY" -m benchmarks.report_classification "$CLS_OUT" "$OUT/classification_report" --title "classification ($PROFILE)"
cat "$OUT/classification_report/table.md"

echo
echo "== [$PROFILE] translation: baseline, label smoothing and PS-KD, EN-DE and DE-EN"
TR_OUT="$OUT/translation"
if [ "$PROFILE" = paper ]; then
    TR_DATA="$REPO/data/translation/iwslt15"
    if [ ! -f "$TR_DATA/summary.json" ]; then
        : "${PSKD_IWSLT15:?set PSKD_IWSLT15 to the extracted IWSLT 2015 EN-DE folder (https://wit3.fbk.eu/2015-01)}"
        "$PY" -m translation.prepare iwslt15 --source "$PSKD_IWSLT15" --out "$TR_DATA"
    fi
else
    TR_DATA="$REPO/data/translation/demo"
    [ -f "$TR_DATA/summary.json" ] || "$PY" -m translation.prepare demo --out "$TR_DATA" > "$OUT/translation_prepare.log" 2>&1
fi
translate() {  # direction method: train (fairseq resumes from checkpoint_last.pt), then generate + BLEU
    "$PY" -m translation.run train --data "$TR_DATA" --direction "$1" --method "$2" --profile "$PROFILE" \
        --runs "$TR_OUT" && \
    "$PY" -m translation.run evaluate --data "$TR_DATA" --direction "$1" --method "$2" --profile "$PROFILE" \
        --runs "$TR_OUT"
}
pids=()
for direction in de-en en-de; do
    for method in baseline ls pskd; do
        if [ "$PROFILE" = paper ]; then translate "$direction" "$method"; continue; fi
        translate "$direction" "$method" > "$OUT/translation_${direction}_${method}.log" 2>&1 &
        pids+=($!)
        if [ ${#pids[@]} -ge "${PSKD_JOBS:-2}" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    done
done
for pid in "${pids[@]}"; do wait "$pid"; done
"$PY" -m translation.run table --runs "$TR_OUT" --out "$OUT/translation_report/table"

echo
echo "== [$PROFILE] detection: Faster R-CNN, plain and with PS-KD in the RoI head"
DET_OUT="$OUT/detection"
if [ "$PROFILE" = paper ]; then
    # Table S3: VOC2007, ResNet-152 backbones pre-trained on ImageNet by the classification stage with each
    # method and converted by detection.convert_backbone to work_dirs/backbones/resnet152_<method>.pth.
    : "${PSKD_VOC:?set PSKD_VOC to the VOCdevkit folder (with VOC2007/)}"
    for method in baseline ls cs_kd tf_kd ps_kd ps_kd_cutmix; do
        backbone="$REPO/work_dirs/backbones/resnet152_$method.pth"
        if [ ! -f "$backbone" ]; then
            echo "detection: no backbone $backbone; convert the ImageNet classifier of '$method' with" \
                 "python -m detection.convert_backbone CHECKPOINT $backbone" >&2
            continue
        fi
        "${PSKD_VENV:-$REPO/.venv}/bin/torchrun" --nproc_per_node="${PSKD_GPUS:-$(nvidia-smi -L | wc -l)}" \
            -m detection.train detection/configs/faster-rcnn_r152_fpn_voc07.py --launcher pytorch --row "$method" \
            --work-dir "$DET_OUT/$method" --cfg-options "model.backbone.init_cfg.checkpoint=$backbone" \
            "train_dataloader.dataset.dataset.data_root=$PSKD_VOC/" "val_dataloader.dataset.data_root=$PSKD_VOC/" \
            "test_dataloader.dataset.data_root=$PSKD_VOC/"
    done
else
    [ -d data/synthetic_voc/VOC2007 ] || "$PY" -c "from detection.voc import make_synthetic_voc; make_synthetic_voc('data/synthetic_voc')"
    DET_ARGS=()
    pids=()
    [ "$PROFILE" = smoke ] && DET_ARGS=(--cfg-options train_cfg.max_epochs=1 train_cfg.val_interval=1)
    for variant in "" _pskd; do
        config="detection/configs/demo_faster-rcnn_r18_synthetic$variant.py"
        if [ -f "$DET_OUT/demo$variant/record.json" ]; then echo "$config: finished earlier, kept"; continue; fi
        "$PY" -m detection.train "$config" --work-dir "$DET_OUT/demo$variant" --resume "${DET_ARGS[@]}" \
            > "$OUT/detection_demo$variant.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
fi
"$PY" -m benchmarks.report_detection "$DET_OUT" "$OUT/detection_report/table" --title "detection ($PROFILE)"

echo
echo "== [$PROFILE] done: results in $OUT"
