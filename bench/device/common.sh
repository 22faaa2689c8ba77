# Sourced by the device scripts: PyTensor from the wheel in .whl/, one BLAS/OpenMP thread per process
# (many processes share the machine's 16 cores), a deadline $1 seconds from now (default $DEFAULT_DEADLINE),
# and `run NAME COMMAND...`, which runs a command until the deadline (SIGINT then: the run keeps its
# checkpoint and metrics) and logs its time. A trial folder $ABL_DIR/NAME that finished is skipped, one
# with a checkpoint is resumed (python -m sda.SdA --resume; L-BFGS restarts its curvature memory there).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/pytensor-*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
export DEADLINE=$(( $(date +%s) + ${1:-$DEFAULT_DEADLINE} ))
export ABL_DIR=${ABL_DIR:-/tmp/abl}
mkdir -p $ABL_DIR /tmp/logs
run() {
  name=$1; shift; left=$(( DEADLINE - $(date +%s) )); [ $left -gt 20 ] || { echo "skip $name" | tee -a /tmp/logs/times.txt; return; }
  [ -f $ABL_DIR/$name/results.json ] && { echo "done before: $name" | tee -a /tmp/logs/times.txt; return; }
  [ -f $ABL_DIR/$name/checkpoint.safetensors ] && set -- python3 -m sda.SdA --resume $ABL_DIR/$name --quiet --no-pictures
  start=$EPOCHREALTIME; timeout -s INT $left "$@" > /tmp/logs/$name.log 2>&1; rc=$?
  echo "$name rc=$rc $(awk "BEGIN{print $EPOCHREALTIME - $start}") s $(date +%s)" | tee -a /tmp/logs/times.txt
}
export -f run
# the trial commands of `python -m sda.ablation --commands` (new trials by --output-dir, interrupted ones
# by --resume) as "NAME COMMAND --mode JAX" lines, for xargs
as_jobs() { sed 's/^python /python3 /; s/$/ --mode JAX/' | awk '{for(i=1;i<=NF;i++) if($i=="--output-dir" || $i=="--resume") {n=split($(i+1),p,"/"); print p[n], $0}}'; }
