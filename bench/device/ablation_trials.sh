#!/bin/bash
# Ablation trials before a deadline of $1 seconds, $2 at a time: those whose folder name matches the
# regular expression $3 (e.g. 'ufldl_width_1000|tutorial_optimiser_full_batch'), or without $3 the
# 21 minibatch-SGD trials that best_and_ablation.sh did not reach on 2026-11-27, the missing rows first.
# The trials' folders are in $ABL_DIR (default /tmp/abl; a folder under runs/, which git ignores, stays
# on the device machine between calls): a trial that finished there is skipped, one with a checkpoint
# is resumed (python -m sda.SdA --resume; L-BFGS restarts its curvature memory there).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/pytensor-*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
export DEADLINE=$(( $(date +%s) + ${1:-230} ))
export ABL_DIR=${ABL_DIR:-/tmp/abl}
mkdir -p $ABL_DIR /tmp/logs
run() {
  name=$1; shift; left=$(( DEADLINE - $(date +%s) )); [ $left -gt 20 ] || { echo "skip $name" | tee -a /tmp/logs/times.txt; return; }
  [ -f $ABL_DIR/$name/results.json ] && { echo "done before: $name" | tee -a /tmp/logs/times.txt; return; }
  [ -f $ABL_DIR/$name/checkpoint.npz ] && set -- python3 -m sda.SdA --resume $ABL_DIR/$name --quiet --no-pictures
  start=$EPOCHREALTIME; timeout -s INT $left "$@" > /tmp/logs/$name.log 2>&1; rc=$?
  echo "$name rc=$rc $(awk "BEGIN{print $EPOCHREALTIME - $start}") s $(date +%s)" | tee -a /tmp/logs/times.txt
}
export -f run
python3 -m sda.ablation --commands --output-dir $ABL_DIR > /tmp/abl_cmds.txt || exit 1
if [ -n "${3:-}" ]; then grep -E -- "--output-dir [^ ]*/($3)_s[0-9]+\$" /tmp/abl_cmds.txt
else grep -vE -- '--optimizer lbfgs' /tmp/abl_cmds.txt | grep -E 'ufldl_optimiser_minibatch|tutorial_fine_tuning_none'
  grep -vE -- '--optimizer lbfgs' /tmp/abl_cmds.txt | grep -vE 'ufldl_optimiser_minibatch|tutorial_fine_tuning_none|tutorial_pretraining_5000'
fi \
  | sed 's/^python /python3 /; s/$/ --mode JAX/' | awk '{for(i=1;i<=NF;i++) if($i=="--output-dir") {n=split($(i+1),p,"/"); print p[n], $0}}' > /tmp/abl_jobs.txt
wc -l /tmp/abl_jobs.txt
xargs -P ${2:-12} -L 1 bash -c 'run "$@"' _ < /tmp/abl_jobs.txt
python3 -m sda.ablation --collect --output-dir $ABL_DIR > $OUT/ablation.txt 2>&1; tail -20 $OUT/ablation.txt
cp $ABL_DIR/ablation.csv $OUT/ 2>/dev/null; cp /tmp/logs/times.txt $OUT/
tar czf $OUT/runs.tgz --exclude='*.npz' -C $(dirname $ABL_DIR) $(basename $ABL_DIR) -C /tmp logs
