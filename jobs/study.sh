#!/bin/bash
# study.sh: an ensemble study, a grid of runs over widths and/or depths, each
# with several independent seeds, then its analysis.
#
#   jobs/study.sh CONFIG.ini [mfres train options...]            here, with mpirun
#   jobs/study.sh --submit CONFIG.ini [mfres train options...]   as Slurm jobs
#   jobs/study.sh --list CONFIG.ini [mfres train options...]     the runs, nothing run
#   jobs/study.sh --analyse CONFIG.ini [mfres train options...]  the analysis alone
#   e.g. MFRES_STUDY_WIDTHS="64 256 1024 4096" MFRES_STUDY_SEEDS=8 \
#            jobs/study.sh jobs/configs/width-study.ini --out runs/width
#
# Run s of grid point (L, M) goes to OUT/L%04d-M%08d/s%03d, OUT being the
# configured output.dir; everything but model.layers, model.width,
# init.seed and train.seed is the same for every run (the data and the
# teacher too). The grid and the seeds come from the environment (see the
# end of jobs/common.sh): MFRES_STUDY_WIDTHS, MFRES_STUDY_DEPTHS,
# MFRES_STUDY_PARTICLES, MFRES_STUDY_SEEDS, MFRES_STUDY_COUPLED.
# With MFRES_STUDY_SCHEMES (e.g. "fixed shuffle shallow") every run is made
# once per training scheme, into OUT/SCHEME/..., with the same seeds, and the
# analysis is analysis/schemes.py (the schemes compared, in pairs). With
# MFRES_STUDY_GRID (e.g. "model.alpha=0.25,1,4", several items: their
# product) every run is made once per combination of values, into
# OUT/KEY=VALUE/..., with the same seeds; every combination is checked by
# `mfres config` before anything runs, and the analysis is
# `analysis/scaling.py key KEY` over the first key's values, once per
# combination of the others (OUT/analysis[/KEY2=VALUE2...]).
#
# Here: the runs one after the other, the most particles first, each with
# `MFRES_LAUNCHER -n MFRES_STUDY_RANKS` (default mpirun -n 2; jobs/common.sh)
# and --restart auto: a finished run (its final checkpoint exists) is
# skipped, an interrupted one continues from its checkpoint, so the command
# can simply be run again. Then analysis/scaling.py (width, or depth when
# several depths are given) writes OUT/analysis/: summary.json, figures and
# the table, run by $PYTHON (default python3 on PATH; e.g.
# PYTHON=$HOME/venv/bin/python), here and in the Slurm analysis job.
#
# --list: one line per run, "DIR L M INIT_SEED TRAIN_SEED", then "# total
# core-hours ..." from `mfres config --ranks MFRES_STUDY_RANKS` (a few
# steps probed on this CPU) per grid point.
#
# --submit: one Slurm array job over the runs not finished yet
# (jobs/study.sbatch, MFRES_STUDY_PER_TASK runs per task, default 1, more
# when the array would pass the cluster's MaxArraySize; at most
# MFRES_STUDY_THROTTLE = 8 tasks at a time; tasks restart and requeue like
# train.sbatch) and an analysis job that starts when the array has ended
# (afterany): it analyses the study if every run finished, and otherwise
# fails naming the runs that did not (submit again: only those are queued).
# sbatch reads its other options from the environment, e.g.
# SBATCH_PARTITION, SBATCH_ACCOUNT, SBATCH_TIMELIMIT. Each array task runs
# MFRES_STUDY_RANKS ranks (--ntasks, default 2) unless MFRES_STUDY_SBATCH
# sizes it, e.g. MFRES_STUDY_SBATCH="-N 2 --ntasks-per-node=32 -t 4:00:00".
# --analyse: that analysis job's work, here.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"

submit=0 list=0 analyse=0
case ${1:-} in
--submit) submit=1 && shift ;;
--list) list=1 && shift ;;
--analyse) analyse=1 && shift ;;
esac
[ $# -ge 1 ] || { sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }

out=$(mfres_config_value dir "$@") && [ -n "$out" ] || exit 2
layers=$(mfres_config_value layers "$@")
width=$(mfres_config_value width "$@")
steps=$(mfres_config_value steps "$@")
grid=$(mfres_study_runs "$layers" "$width") || exit 2
runs=$(wc -l <<< "$grid")
kind=width
[ "$(cut -d' ' -f2 <<< "$grid" | sort -u | wc -l)" -gt 1 ] && kind=depth
PYTHON=${PYTHON:-python3}
command -v "$PYTHON" > /dev/null ||
    { echo "mfres study: PYTHON = '$PYTHON': no such command" >&2; exit 2; }
analysis=("$PYTHON" "$here/../analysis/scaling.py" "$kind" "$out" --out "$out/analysis")
[ -n "${MFRES_STUDY_SCHEMES:-}" ] &&
    analysis=("$PYTHON" "$here/../analysis/schemes.py" "$out" --out "$out/analysis")
variants=$(cut -d' ' -f1 <<< "$grid" | sort -u)
if [ -n "${MFRES_STUDY_GRID:-}" ]; then
    # Every combination of values a valid configuration, before any run.
    while read -r v; do
        mapfile -t set < <(mfres_study_args "$out" "$v" "$layers" "$width" 1)
        "$MFRES" config "$@" "${set[@]}" > /dev/null || exit 2
    done <<< "$variants"
fi

# The analysis: one, or with MFRES_STUDY_GRID one per combination of the
# values of all keys but the first, over the first key's values.
analyse_study() {
    [ -n "${MFRES_STUDY_GRID:-}" ] || { "${analysis[@]}"; return; }
    local first rest rc=0
    first=$(sed 's/^ *//; s/=.*//' <<< "$MFRES_STUDY_GRID")
    while read -r rest; do
        "$PYTHON" "$here/../analysis/scaling.py" key "$first" "$out/$first="*"$rest" \
            --out "$out/analysis$rest" || rc=$?
    done < <(sed -n 's|^[^/]*||p' <<< "$variants" | sort -u)
    return $rc
}

ranks=${MFRES_STUDY_RANKS:-2}
if [ "$list" = 1 ]; then
    # One line per run, and the core-hours from `mfres config --ranks` (a
    # probe of this CPU) once per grid point.
    declare -A point count hours
    while read -r scheme L M s; do
        key="$L $M"
        if [ -z "${point[$key]:-}" ]; then
            point[$key]=$(mfres_study_point "$L" "$M")
            hours[$key]=$("$MFRES" config "$@" --set model.layers="$L" --set model.width="$M" \
                              --ranks "$ranks" | sed -n 's/.*, \([^ ]*\) core-hours.*/\1/p')
            count[$key]=0
        fi
        count[$key]=$((count[$key] + 1))
        seed=$(mfres_study_seed "$L" "$M" "$s" "${point[$key]}")
        base=$out
        [ "$scheme" = - ] || base=$out/$scheme
        printf '%s/L%04d-M%08d/s%03d %s %s %s %s\n' "$base" "$L" "$M" "$s" "$L" "$M" "$seed" "$seed"
    done <<< "$grid"
    for key in "${!count[@]}"; do echo "${count[$key]} ${hours[$key]}"; done |
        awk -v runs="$runs" -v ranks="$ranks" '{ total += $1 * $2 }
            END { printf "# total core-hours %.4g for %d runs of %d ranks (probed on this CPU)\n", total, runs, ranks }'
    exit 0
fi

# The runs whose final checkpoint does not exist yet, one "SCHEME L M s" line each.
unfinished() {
    local scheme L M s
    while read -r scheme L M s; do
        mfres_run_finished "$(mfres_study_dir "$out" "$scheme" "$L" "$M" "$s")" "$steps" ||
            echo "$scheme $L $M $s"
    done <<< "$grid"
}

if [ "$analyse" = 1 ]; then
    # The analysis job of --submit: every run finished, or a failure naming
    # those that did not (never an analysis of half a grid).
    todo=$(unfinished)
    if [ -n "$todo" ]; then
        echo "mfres study: not analysed: $(grep -c . <<< "$todo") of $runs runs did not finish" \
             "(submit again to run them):" >&2
        while read -r scheme L M s; do
            echo "  $(mfres_study_dir "$out" "$scheme" "$L" "$M" "$s")" >&2
        done <<< "$todo"
        exit 1
    fi
    analyse_study
    exit
fi

mkdir -p "$out" || exit 1
echo "mfres study: $runs runs into $out (protocol:" \
     "$([ "${MFRES_STUDY_COUPLED:-0}" = 1 ] && echo coupled || echo uncoupled))"
if [ "$submit" = 1 ]; then
    # Only the unfinished runs are queued, PER to an array task:
    # MFRES_STUDY_PER_TASK, or more when the array would pass the cluster's
    # MaxArraySize. The analysis job starts once the array has ended, however.
    todo=$(unfinished)
    n=$(grep -c . <<< "$todo")
    per=${MFRES_STUDY_PER_TASK:-1}
    [[ $per =~ ^[1-9][0-9]*$ ]] ||
        { echo "mfres study: MFRES_STUDY_PER_TASK='$per' is not a positive integer" >&2; exit 2; }
    max=$(scontrol show config 2>/dev/null | sed -n 's/^MaxArraySize *= *\([0-9]*\).*/\1/p')
    max=${max:-1001}
    (((n + per - 1) / per <= max)) || per=$(((n + max - 1) / max))
    tasks=$(((n + per - 1) / per))
    after=()
    if [ "$n" -gt 0 ]; then
        queue=$out/queue-$(date +%Y%m%d-%H%M%S)-$$.txt
        printf '%s\n' "$todo" > "$queue" || exit 1
        size=(--ntasks="$ranks")
        [[ " ${MFRES_STUDY_SBATCH:-} " =~ \ (-n|--ntasks|-N|--nodes|--ntasks-per-node)[=\ ] ]] && size=()
        job=$(MFRES_STUDY_QUEUE=$queue MFRES_STUDY_PER_TASK=$per \
              sbatch --parsable --export=ALL --array="0-$((tasks - 1))%${MFRES_STUDY_THROTTLE:-8}" \
                  --output="$out/slurm-%A_%a.out" ${size[@]+"${size[@]}"} ${MFRES_STUDY_SBATCH:-} \
                  "$here/study.sbatch" "$@") || exit 1
        job=${job%%;*}
        after=(--dependency="afterany:$job")
        echo "mfres study: array job $job ($tasks tasks of up to $per runs: the $n of $runs" \
             "runs not finished)"
    fi
    analysis_job=$(sbatch --parsable ${after[@]+"${after[@]}"} --ntasks=1 \
                       --job-name=mfres-analysis --output="$out/analysis-%j.out" \
                       --wrap "$(printf '%q ' "$here/study.sh" --analyse "$@")") || exit 1
    echo "mfres study: analysis job ${analysis_job%%;*}"
    exit 0
fi

mfres_launcher
while read -r scheme L M s; do
    mapfile -t set < <(mfres_study_args "$out" "$scheme" "$L" "$M" "$s")
    dir=${set[-1]}
    if mfres_run_finished "$dir" "$steps"; then
        echo "mfres study: $dir finished; skipped"
        continue
    fi
    mkdir -p "$dir" || exit 1
    label=
    [ "$scheme" = - ] || label="$scheme, "
    echo "mfres study: ${label}L = $L, M = $M, seed $s -> $dir"
    "${mfres_launch[@]}" -n "$ranks" "$MFRES" train "$@" "${set[@]}" --restart auto < /dev/null >> "$dir/job.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "mfres study: $dir: mfres exited with status $rc (see $dir/job.log); run" \
             "this command again to continue" >&2
        exit $rc
    fi
done <<< "$grid"
analyse_study
