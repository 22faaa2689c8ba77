#!/bin/bash
# On one GPU machine, in one run: the best preset's seeds ($BEST_SEEDS) uninterrupted, and the full
# ablation's 48 runs (as python -m sda.SdA commands: Ray is not installed there), the rows still missing first,
# all stopped at a deadline of $1 seconds from now.
set -u
DEFAULT_DEADLINE=450; . bench/device/common.sh
nvidia-smi -L 2>/dev/null; nproc
python3 -c "import pytensor, jax, numpy, scipy, sys; print('python', sys.version.split()[0], 'pytensor', pytensor.__version__, 'jax', jax.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__, jax.devices())"
mkdir -p /tmp/best
T0=$(date +%s); echo "start $T0" >> /tmp/logs/times.txt
for s in ${BEST_SEEDS:-3 2}; do run best_s$s python3 -m sda.SdA --preset best --seed $s --mode JAX --quiet --no-pictures --output-dir /tmp/best/best_s$s & done
python3 -m sda.ablation --commands --output-dir $ABL_DIR > /tmp/abl_cmds.txt || exit 1
measured='--output-dir [^ ]*/(tutorial|tutorial_criterion_sparse|tutorial_criterion_plain|tutorial_depth_2|tutorial_width_200|ufldl_optimiser_minibatch)_s[0-9]+$'
lbfgs='--optimizer lbfgs'
{ grep -E 'tutorial_optimiser|ufldl_width' /tmp/abl_cmds.txt                                        # L-BFGS, 1000 units
  grep -vE 'tutorial_optimiser|ufldl_width' /tmp/abl_cmds.txt | grep -E -- "$lbfgs"                  # L-BFGS, 200 units
  grep -vE -- "$lbfgs" /tmp/abl_cmds.txt | grep -vE -- "$measured"                                   # SGD rows not measured yet
  grep -vE -- "$lbfgs" /tmp/abl_cmds.txt | grep -E -- "$measured" | grep -E 'minibatch_s3'
  grep -vE -- "$lbfgs" /tmp/abl_cmds.txt | grep -E -- "$measured" | grep -vE 'minibatch_s3'; } \
  | as_jobs > /tmp/abl_jobs.txt
wc -l /tmp/abl_jobs.txt; sort -u /tmp/abl_jobs.txt | wc -l
nice -n 5 xargs -P ${2:-12} -L 1 bash -c 'run "$@"' _ < /tmp/abl_jobs.txt
wait
echo "all done after $(( $(date +%s) - T0 )) s"
python3 -m sda.ablation --collect --output-dir $ABL_DIR > $OUT/ablation.txt 2>&1; tail -40 $OUT/ablation.txt
cp $ABL_DIR/ablation.csv $ABL_DIR/ablation.png $OUT/ 2>/dev/null
python3 bench/device/collect_runs.py /tmp/best > $OUT/best.csv; cat $OUT/best.csv
cp /tmp/logs/times.txt $OUT/; cat $OUT/times.txt | sort -k2 | head -70
tar czf $OUT/runs.tgz --exclude='*.safetensors' -C $(dirname $ABL_DIR) $(basename $ABL_DIR) -C /tmp best logs
ls -la $OUT
