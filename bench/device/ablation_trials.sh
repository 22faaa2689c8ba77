#!/bin/bash
# Ablation trials before a deadline of $1 seconds, $2 at a time: those of the rows named in $3 (e.g.
# 'ufldl_width_1000 tutorial_optimiser_full_batch'), or without $3 the 21 minibatch-SGD trials that
# best_and_ablation.sh did not reach on 2026-11-27, the missing rows first.
# The trials' folders are in $ABL_DIR (default /tmp/abl; a folder under runs/, which git ignores, stays
# on the machine between runs, and common.sh's run() resumes what did not finish).
set -u
DEFAULT_DEADLINE=230; . bench/device/common.sh
python3 -m sda.ablation --commands ${3:+--rows $3} --output-dir $ABL_DIR > /tmp/abl_cmds.txt || exit 1
if [ -n "${3:-}" ]; then cat /tmp/abl_cmds.txt
else grep -vE -- '--optimizer lbfgs' /tmp/abl_cmds.txt | grep -E 'ufldl_optimiser_minibatch|tutorial_fine_tuning_none'
  grep -vE -- '--optimizer lbfgs' /tmp/abl_cmds.txt | grep -vE 'ufldl_optimiser_minibatch|tutorial_fine_tuning_none|tutorial_pretraining_5000'
fi \
  | as_jobs > /tmp/abl_jobs.txt
wc -l /tmp/abl_jobs.txt
xargs -P ${2:-12} -L 1 bash -c 'run "$@"' _ < /tmp/abl_jobs.txt
python3 -m sda.ablation --collect --output-dir $ABL_DIR > $OUT/ablation.txt 2>&1; tail -20 $OUT/ablation.txt
cp $ABL_DIR/ablation.csv $OUT/ 2>/dev/null; cp /tmp/logs/times.txt $OUT/
tar czf $OUT/runs.tgz --exclude='*.safetensors' -C $(dirname $ABL_DIR) $(basename $ABL_DIR) -C /tmp logs
