# Shared by the mfres job scripts (sourced, not run): finding mfres, the run
# directory, the launcher, signal forwarding, and requeueing after a clean
# stop. Settings, all from the environment:
#
#   MFRES               the mfres binary (default: build/mfres of the source
#                       tree holding jobs/, else bin/mfres of the prefix that
#                       `make install` put jobs/ in, else mfres on PATH)
#   MFRES_LAUNCHER      the command line that starts the ranks, split at
#                       spaces; mfres and its arguments follow it. Default:
#                       srun inside a Slurm job (the site's MPI plugin,
#                       MpiDefault), mpirun outside. E.g. "srun --mpi=pmi2",
#                       "srun --cpu-bind=cores", "mpirun -x OMP_NUM_THREADS",
#                       "mpiexec" (jobs/README.md)
#   MFRES_MAX_RESTARTS  requeues allowed after a clean stop (default 20)

# --help or -h among the arguments: the calling script's opening comment, exit 0.
for mfres_arg in "$@"; do
    case $mfres_arg in
    --help | -h)
        awk 'NR > 1 && /^#( |$)/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${script:-$0}"
        exit 0 ;;
    esac
done

# mfres's exit statuses (enum mf_exit in include/log.h; a test keeps them equal)
MFRES_EXIT_USAGE=2 MFRES_EXIT_STOPPED=3

if [ -z "${MFRES:-}" ]; then
    mfres_jobs=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    for MFRES in "$mfres_jobs/../build/mfres" "$mfres_jobs/../../../bin/mfres" \
                 "$(command -v mfres)" ""; do
        [ -n "$MFRES" ] && [ -x "$MFRES" ] && break
    done
fi
if [ -z "$MFRES" ] || [ ! -x "$MFRES" ]; then
    echo "mfres job: cannot find the mfres binary; set MFRES=/path/to/mfres" >&2
    exit $MFRES_EXIT_USAGE
fi
if [ -z "${MFRES_LAUNCHER:-}" ]; then
    MFRES_LAUNCHER=mpirun
    [ -n "${SLURM_JOB_ID:-}" ] && MFRES_LAUNCHER=srun
fi

# mfres_launcher: the launcher's words into the array mfres_launch; dies
# when its command is not there.
mfres_launcher() {
    read -ra mfres_launch <<< "$MFRES_LAUNCHER"
    if [ ${#mfres_launch[@]} = 0 ] || ! command -v "${mfres_launch[0]}" > /dev/null; then
        echo "mfres job: MFRES_LAUNCHER = '$MFRES_LAUNCHER': no command" \
             "'${mfres_launch[0]:-}' on PATH" >&2
        exit $MFRES_EXIT_USAGE
    fi
}
MFRES_MAX_RESTARTS=${MFRES_MAX_RESTARTS:-20}
MFRES_LAUNCH_S=2 # how long a launcher may take to start the ranks on one node
export OPENBLAS_NUM_THREADS=1 # one rank per core

# The run directory that `mfres train ARGS` would use. Checks the
# configuration, so bad input fails here, before any work.
mfres_run_dir() {
    local resolved
    resolved=$("$MFRES" config "$@") || exit $MFRES_EXIT_USAGE
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
    local dir restarts=${SLURM_RESTART_COUNT:-0} rc
    dir=$(mfres_run_dir "$@") || exit $MFRES_EXIT_USAGE
    mfres_launcher
    mkdir -p "$dir" || exit 1
    exec > >(tee -a "$dir/job.log") 2>&1
    echo "mfres job ${SLURM_JOB_ID:-(no job)}: start $((restarts + 1)) on $(hostname)," \
         "${SLURM_NTASKS:-?} tasks on ${SLURM_JOB_NUM_NODES:-?} nodes, launcher" \
         "${mfres_launch[*]}, run directory $dir"
    trap 'mfres_signalled=1' USR1 TERM
    "${mfres_launch[@]}" "$MFRES" train "$@" --restart auto &
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
    if [ "$rc" -eq "$MFRES_EXIT_STOPPED" ] && [ -n "${SLURM_JOB_ID:-}" ]; then
        if [ "$restarts" -lt "$MFRES_MAX_RESTARTS" ]; then
            echo "mfres job: stopped with a checkpoint; requeueing (restart $((restarts + 1))" \
                 "of at most $MFRES_MAX_RESTARTS)"
            scontrol requeue "$SLURM_JOB_ID"
            exit "${MFRES_REQUEUED_STATUS:-0}"
        fi
        echo "mfres job: stopped with a checkpoint, but $restarts restarts reached" \
             "MFRES_MAX_RESTARTS = $MFRES_MAX_RESTARTS; giving up (continue with another" \
             "submission: it restarts from the checkpoint)"
    fi
    echo "mfres job: mfres exited with status $rc"
    exit "$rc"
}

# ---- ensemble studies (study.sh, study.sbatch) ----
#
#   MFRES_STUDY_WIDTHS     widths M, e.g. "64 256 1048576:4" (default: the
#                          configuration's model.width); M:S gives that width S seeds
#   MFRES_STUDY_DEPTHS     depths L, e.g. "2 4 8:4" (default: model.layers)
#   MFRES_STUDY_PARTICLES  instead of widths: M = PARTICLES / L at every depth
#   MFRES_STUDY_SEEDS      independent seeds per grid point (default 8)
#   MFRES_STUDY_COUPLED    1: the coupled protocol (init.seed = s at every grid
#                          point, so runs of one seed share their first
#                          particles); default 0: uncoupled, every run its own
#                          seed (mfres_study_seed), distinct over the study
#   MFRES_STUDY_SCHEMES    training schemes run on every grid point, e.g.
#                          "fixed shuffle shallow" (default: none, the
#                          configuration as given): fixed = train.order=fixed,
#                          shuffle = train.order=shuffle (a new block order every
#                          step), shallow = model.architecture=shallow (the
#                          two-layer ensemble); run s of each scheme has the same
#                          seeds, so the schemes are compared in pairs
#   MFRES_STUDY_GRID       other keys varied over every grid point, e.g.
#                          "model.alpha=0.25,0.5,1,2,4"; several items give
#                          their product, e.g. "model.alpha=1,4 train.lr=0.1,0.2";
#                          run s of every combination has the same seeds; it
#                          trains into OUT/KEY=VALUE[/KEY2=VALUE2...]/L.../s...
#                          Not with MFRES_STUDY_SCHEMES, nor for the keys the
#                          study sets (model.layers, model.width, init.seed,
#                          train.seed) or [output] keys

# A positive integer, optionally ":S" with S >= 1 seeds; dies otherwise.
mfres_study_entry() {
    [[ $2 =~ ^[1-9][0-9]{0,11}(:[1-9][0-9]{0,9})?$ ]] && { [[ $2 != *:* ]] || ((${2#*:} < 1 << 31)); } &&
        return
    echo "mfres study: $1 entry '$2' is not N or N:SEEDS (positive integers)" >&2
    exit $MFRES_EXIT_USAGE
}

# mfres_study_grid LAYERS WIDTH: the runs of the study, one "L M s" line each
# (s = 1..seeds), the most particles first so that the longest runs start
# first.
mfres_study_grid() {
    local L M S e d w seeds=${MFRES_STUDY_SEEDS:-8}
    [[ $seeds =~ ^[1-9][0-9]{0,9}$ ]] && ((seeds < 1 << 31)) ||
        { echo "mfres study: MFRES_STUDY_SEEDS='$seeds' is not a positive integer below 2^31" >&2; exit $MFRES_EXIT_USAGE; }
    local depths=${MFRES_STUDY_DEPTHS:-$1} widths=${MFRES_STUDY_WIDTHS:-$2}
    for d in $depths; do
        mfres_study_entry MFRES_STUDY_DEPTHS "$d"
        L=${d%%:*}
        if [ -n "${MFRES_STUDY_PARTICLES:-}" ]; then
            mfres_study_entry MFRES_STUDY_PARTICLES "$MFRES_STUDY_PARTICLES"
            if (( MFRES_STUDY_PARTICLES % L )); then
                echo "mfres study: MFRES_STUDY_PARTICLES = $MFRES_STUDY_PARTICLES is not a" \
                     "multiple of the depth $L" >&2
                exit $MFRES_EXIT_USAGE
            fi
            w=$((MFRES_STUDY_PARTICLES / L))
            [[ $d == *:* ]] && w="$w:${d#*:}"
            set -- "$w"
        else
            set -- $widths
        fi
        for e in "$@"; do
            mfres_study_entry MFRES_STUDY_WIDTHS "$e"
            M=${e%%:*}
            S=$seeds
            [[ $e == *:* ]] && S=${e#*:}
            [[ $d == *:* ]] && S=${d#*:}
            if ((S < 2)); then # the analysis would refuse it after every run
                echo "mfres study: L = $L, M = $M would have $S seed: an ensemble needs at" \
                     "least 2 seeds per grid point (MFRES_STUDY_SEEDS, or N:SEEDS)" >&2
                exit $MFRES_EXIT_USAGE
            fi
            for ((s = 1; s <= S; s++)); do echo "$((L * M)) $L $M $s"; done
        done
    done | sort -k1,1nr -k2,2n -k4,4n | uniq | cut -d' ' -f2-
}

# mfres_study_variants: what every grid point runs, one token a line: "-"
# (the configuration as given), a scheme (MFRES_STUDY_SCHEMES), or a
# combination of MFRES_STUDY_GRID values, KEY=VALUE[/KEY2=VALUE2...] (the
# first key outermost).
mfres_study_variants() {
    local variants=(-) item key value keys=" " prefix next
    if [ -n "${MFRES_STUDY_SCHEMES:-}" ]; then
        [ -z "${MFRES_STUDY_GRID:-}" ] || {
            echo "mfres study: MFRES_STUDY_SCHEMES and MFRES_STUDY_GRID exclude each other" \
                 "(a scheme is a choice of train.order and model.architecture)" >&2
            exit $MFRES_EXIT_USAGE; }
        variants=($MFRES_STUDY_SCHEMES)
        for item in "${variants[@]}"; do
            case $item in
                fixed|shuffle|shallow) ;;
                *) echo "mfres study: MFRES_STUDY_SCHEMES entry '$item' is not fixed, shuffle or shallow" >&2
                   exit $MFRES_EXIT_USAGE ;;
            esac
        done
    fi
    for item in ${MFRES_STUDY_GRID:-}; do
        if ! [[ $item =~ ^([a-z_]+\.[a-z_0-9]+)=([^,/=]+(,[^,/=]+)*)$ ]]; then
            echo "mfres study: MFRES_STUDY_GRID entry '$item' is not KEY=VALUE[,VALUE...]" \
                 "(section.key, values without '/', '=' or spaces)" >&2
            exit $MFRES_EXIT_USAGE
        fi
        key=${BASH_REMATCH[1]}
        case $key in
            model.layers|model.width|init.seed|train.seed|output.*)
                echo "mfres study: MFRES_STUDY_GRID cannot vary $key (the study sets the widths," \
                     "depths and seeds, and [output] keys are not part of a run's dynamics)" >&2
                exit $MFRES_EXIT_USAGE ;;
        esac
        [[ $keys == *" $key "* ]] &&
            { echo "mfres study: MFRES_STUDY_GRID gives $key twice" >&2; exit $MFRES_EXIT_USAGE; }
        keys+="$key "
        next=()
        for prefix in "${variants[@]}"; do
            IFS=, read -ra values <<< "${BASH_REMATCH[2]}"
            for value in "${values[@]}"; do
                if [ "$prefix" = - ]; then next+=("$key=$value"); else next+=("$prefix/$key=$value"); fi
            done
        done
        variants=("${next[@]}")
    done
    printf '%s\n' "${variants[@]}"
}

# mfres_study_runs LAYERS WIDTH: the runs of the study, one "VARIANT L M s"
# line each (mfres_study_variants), in the grid's order, the variants of one
# grid point and seed together.
mfres_study_runs() {
    local grid variants L M s v
    variants=$(mfres_study_variants) || exit $?
    grid=$(mfres_study_grid "$1" "$2") || exit $?
    # The second seed form needs distinct hashes over the grid points.
    local points
    points=$(while read -r L M; do echo "$(mfres_study_point "$L" "$M") $L $M"; done \
                 < <(cut -d' ' -f1,2 <<< "$grid" | sort -u))
    if [ "$(cut -d' ' -f1 <<< "$points" | sort | uniq -d)" ]; then
        echo "mfres study: two grid points share a seed block (a hash collision of" \
             "mfres_study_point): change one width or depth by one" >&2
        exit $MFRES_EXIT_USAGE
    fi
    while read -r L M s; do
        while read -r v; do echo "$v $L $M $s"; done <<< "$variants"
    done <<< "$grid"
}

# mfres_study_point L M: a 31-bit hash of a grid point (splitmix64's mixer).
mfres_study_point() {
    local x=$(($1 * 0x9E3779B97F4A7C15 + $2))
    x=$(((x ^ ((x >> 30) & 0x3FFFFFFFF)) * 0xBF58476D1CE4E5B9))
    x=$(((x ^ ((x >> 27) & 0x1FFFFFFFFF)) * 0x94D049BB133111EB))
    echo $(((x ^ ((x >> 31) & 0x1FFFFFFFF)) & 0x7FFFFFFF))
}

# mfres_study_seed L M s: init.seed and train.seed of run s at grid point
# (L, M). Coupled: s. Uncoupled: s + 1000 (L + 100000 M) while s < 1000,
# L < 100000 and M < 4 10^10 (distinct, as s + 1000 L < 10^8); beyond, 2^62
# + 2^31 h(L, M) + s with h = mfres_study_point, s < 2^31: above every seed
# of the first form, and distinct when h is (mfres_study_runs checks that it
# is over the study's grid).
# A fourth argument, h(L, M) computed before, saves computing it again.
mfres_study_seed() {
    if [ "${MFRES_STUDY_COUPLED:-0}" = 1 ]; then
        echo "$3"
    elif (($3 < 1000 && $1 < 100000 && $2 < 40000000000)); then
        echo $(($3 + 1000 * ($1 + 100000 * $2)))
    else
        echo $(((1 << 62) + (1 << 31) * ${4:-$(mfres_study_point "$1" "$2")} + $3))
    fi
}

# mfres_study_dir OUT VARIANT L M s: the run directory of one run of a study,
# OUT[/VARIANT]/L%04d-M%08d/s%03d.
mfres_study_dir() {
    local out=$1
    [ "$2" = - ] || out=$1/$2
    printf '%s/L%04d-M%08d/s%03d\n' "$out" "$3" "$4" "$5"
}

# mfres_run_finished DIR STEPS: whether the run in DIR has its final
# checkpoint (after STEPS steps).
mfres_run_finished() {
    [ -e "$1/checkpoints/ckpt-$(printf %08d "$2").h5" ]
}

# mfres_study_args OUT VARIANT L M s: the `mfres train` options of one run
# of a study; it trains into mfres_study_dir.
mfres_study_args() {
    local seed part parts
    seed=$(mfres_study_seed "$3" "$4" "$5")
    IFS=/ read -ra parts <<< "${2#-}"
    for part in ${parts[@]+"${parts[@]}"}; do
        case $part in
            fixed|shuffle) printf -- '--set\ntrain.order=%s\n' "$part" ;;
            shallow) printf -- '--set\nmodel.architecture=shallow\n--set\ntrain.order=fixed\n' ;;
            *) printf -- '--set\n%s\n' "$part" ;;
        esac
    done
    printf -- '--set\nmodel.layers=%s\n--set\nmodel.width=%s\n--set\ninit.seed=%s\n' "$3" "$4" "$seed"
    printf -- '--set\ntrain.seed=%s\n--out\n%s\n' "$seed" "$(mfres_study_dir "$@")"
}

# mfres_config_value KEY ARGS: one key of the resolved configuration.
mfres_config_value() {
    local key=$1
    shift
    "$MFRES" config "$@" | sed -n "s/^$key = //p"
}
