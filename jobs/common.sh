# Shared by the mfres job scripts (sourced, not run): finding mfres, the run
# directory, the launcher, signal forwarding, and requeueing after a clean
# stop. Settings, all from the environment:
#
#   MFRES               the mfres binary (default: build/mfres next to jobs/,
#                       else mfres on PATH)
#   MFRES_LAUNCHER      srun (default; srun --mpi=pmix) or mpirun
#   MFRES_MAX_RESTARTS  requeues allowed after a clean stop (default 20)

if [ -z "${MFRES:-}" ]; then
    MFRES="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/mfres"
    [ -x "$MFRES" ] || MFRES=$(command -v mfres) || MFRES=
fi
if [ -z "$MFRES" ] || [ ! -x "$MFRES" ]; then
    echo "mfres job: cannot find the mfres binary; set MFRES=/path/to/mfres" >&2
    exit 2
fi
MFRES_LAUNCHER=${MFRES_LAUNCHER:-srun}
MFRES_MAX_RESTARTS=${MFRES_MAX_RESTARTS:-20}
MFRES_LAUNCH_S=2 # how long a launcher may take to start the ranks on one node
export OPENBLAS_NUM_THREADS=1 # one rank per core

# The run directory that `mfres train ARGS` would use. Checks the
# configuration, so bad input fails here, before any work.
mfres_run_dir() {
    local resolved
    resolved=$("$MFRES" config "$@") || exit 2
    sed -n 's/^dir = //p' <<< "$resolved"
}

# The trap while mfres runs: ask it (through the launcher) to stop.
mfres_forward() {
    echo "mfres job: signal received ${1:-$SECONDS s into this start}; asking mfres to" \
         "checkpoint and stop"
    kill -USR1 "$child" 2>/dev/null
}

# mfres_train ARGS: one start of `mfres train ARGS --restart auto` under the
# launcher, with its output also appended to RUN_DIR/job.log. SIGUSR1 or
# SIGTERM to this script (Slurm's --signal=B:USR1@T, scancel --signal,
# preemption) is forwarded as SIGUSR1, which mfres answers with a checkpoint
# and exit 3; the job is then requeued, at most MFRES_MAX_RESTARTS times, and
# the next start continues from that checkpoint. No signal is lost: one that
# comes before mfres is launched (the scripts' first command traps it into
# mfres_signalled) or in the first MFRES_LAUNCH_S seconds after is forwarded
# then; mfres handles it from its first instruction, stopping after one step.
# Exits with mfres's status.
mfres_train() {
    local dir restarts=${SLURM_RESTART_COUNT:-0} rc launch
    dir=$(mfres_run_dir "$@") || exit 2
    mkdir -p "$dir" || exit 1
    exec > >(tee -a "$dir/job.log") 2>&1
    case "$MFRES_LAUNCHER" in
        srun) launch=(srun --mpi=pmix) ;;
        mpirun) launch=(mpirun) ;;
        *) echo "mfres job: MFRES_LAUNCHER must be srun or mpirun, not '$MFRES_LAUNCHER'"; exit 2 ;;
    esac
    echo "mfres job ${SLURM_JOB_ID:-(no job)}: start $((restarts + 1)) on $(hostname)," \
         "${SLURM_NTASKS:-?} tasks, launcher $MFRES_LAUNCHER, run directory $dir"
    trap 'mfres_signalled=1' USR1 TERM
    "${launch[@]}" "$MFRES" train "$@" --restart auto &
    child=$!
    # A signal from before the launch, or from its first seconds, is held:
    # the launcher may not have started the ranks yet.
    sleep "$MFRES_LAUNCH_S"
    trap mfres_forward USR1 TERM
    [ "${mfres_signalled:-0}" = 0 ] || mfres_forward "while mfres started"
    # wait returns early when a trapped signal arrives: wait again until the
    # launcher has really exited.
    while :; do
        wait "$child"
        rc=$?
        kill -0 "$child" 2>/dev/null || break
    done
    trap - USR1 TERM
    if [ "$rc" -eq 3 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
        if [ "$restarts" -lt "$MFRES_MAX_RESTARTS" ]; then
            echo "mfres job: stopped with a checkpoint; requeueing (restart $((restarts + 1))" \
                 "of at most $MFRES_MAX_RESTARTS)"
            scontrol requeue "$SLURM_JOB_ID"
            exit 0
        fi
        echo "mfres job: stopped with a checkpoint, but $restarts restarts reached" \
             "MFRES_MAX_RESTARTS = $MFRES_MAX_RESTARTS; giving up (continue with another" \
             "submission: it restarts from the checkpoint)"
    fi
    echo "mfres job: mfres exited with status $rc"
    exit "$rc"
}
