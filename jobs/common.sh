# Shared by the mfres job scripts (sourced, not run): finding mfres, the run
# directory, the launcher, signal forwarding, and requeueing after a clean
# stop. Settings, all from the environment:
#
#   MFRES               the mfres binary (default: build/mfres next to jobs/,
#                       else mfres on PATH)
#   MFRES_LAUNCHER      srun (default; srun --mpi=pmix) or mpirun
#   MFRES_MAX_RESTARTS  requeues allowed after a clean stop (default 20)
#   MFRES_IGNORE_SIGNALS_S  signals in the first seconds of a start are logged
#                       and ignored (default 5): Slurm 22.05 can deliver the
#                       previous start's time-limit warning to a requeued job
#                       just after it starts, which would stop it at once

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
MFRES_IGNORE_SIGNALS_S=${MFRES_IGNORE_SIGNALS_S:-5}
export OPENBLAS_NUM_THREADS=1 # one rank per core

# The run directory that `mfres train ARGS` would use. Checks the
# configuration, so bad input fails here, before any work.
mfres_run_dir() {
    local resolved
    resolved=$("$MFRES" config "$@") || exit 2
    sed -n 's/^dir = //p' <<< "$resolved"
}

# The trap of a running start: ask mfres (through the launcher) to stop.
mfres_forward() {
    if [ "$SECONDS" -lt "$MFRES_IGNORE_SIGNALS_S" ]; then
        echo "mfres job: ignoring a signal ${SECONDS} s into this start (a late time-limit warning)"
        return
    fi
    echo "mfres job: signal received; asking mfres to checkpoint and stop"
    kill -USR1 "$child" 2>/dev/null
}

# mfres_train ARGS: one start of `mfres train ARGS --restart auto` under the
# launcher, with its output also appended to RUN_DIR/job.log. SIGUSR1 or
# SIGTERM to this script (Slurm's --signal=B:USR1@T, scancel --signal,
# preemption) is forwarded as SIGUSR1, which mfres answers with a checkpoint
# and exit 3; the job is then requeued, at most MFRES_MAX_RESTARTS times, and
# the next start continues from that checkpoint. Exits with mfres's status.
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
    "${launch[@]}" "$MFRES" train "$@" --restart auto &
    child=$!
    trap 'mfres_forward' USR1 TERM
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
