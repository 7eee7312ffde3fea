#!/usr/bin/env bash
# Checkpoint write and read throughput against the raw sequential write speed
# of the same disk, measured in one run.
#
#   tests/bench/checkpoint_io.sh [DIR]      (default DIR: build/bench-io)
#
# Environment: RANKS (2), LAYERS (10), WIDTH (1000000), DIM (16): the
# checkpoint holds LAYERS x WIDTH particles of 2 DIM + 1 doubles; MFRES
# (build/mfres): the program measured.
# A zero-step run writes one checkpoint; `mfres info` verifies its checksums
# (a read of the whole file); a restart from it verifies and reads it back
# (the particle read is timed alone); dd writes the same number of bytes
# with conv=fsync. Reads are timed after dropping the page cache when the
# kernel allows it (root outside a container); otherwise they are marked
# "cached".
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${1:-build/bench-io}
RANKS=${RANKS:-2} LAYERS=${LAYERS:-10} WIDTH=${WIDTH:-1000000} DIM=${DIM:-16}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIRUN=${MPIRUN:-mpirun --oversubscribe}
MFRES=${MFRES:-build/mfres}
rm -rf "$DIR" && mkdir -p "$DIR"
BYTES=$((LAYERS * WIDTH * (2 * DIM + 1) * 8))

SETS=(--set model.layers=$LAYERS --set model.width=$WIDTH --set model.dim=$DIM
      --set data.samples=16 --set data.test_samples=16 --set train.steps=0)
$MPIRUN -n "$RANKS" "$MFRES" train jobs/configs/default.ini "${SETS[@]}" --out "$DIR/run" \
    > "$DIR/write.log"
CKPT="$DIR/run/checkpoints/ckpt-00000000.h5"
write_line=$(grep "^checkpoint $CKPT" "$DIR/write.log")
write_s=$(sed -E 's/.* in ([0-9.]+) s .*/\1/' <<< "$write_line")

drop_cache() { sync && echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; }
cached=cached
if drop_cache; then cached="page cache dropped"; fi
start=$(date +%s.%N)
$MPIRUN -n "$RANKS" "$MFRES" info "$CKPT" > /dev/null
verify_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
drop_cache || true
$MPIRUN -n "$RANKS" "$MFRES" train jobs/configs/default.ini "${SETS[@]}" --out "$DIR/run" \
    --restart "$CKPT" > "$DIR/read.log"
read_s=$(grep -o 'particles in [0-9.]* s' "$DIR/read.log" | grep -o '[0-9.]* s' | cut -d' ' -f1)

dd_out=$(dd if=/dev/zero of="$DIR/dd.bin" bs=16M count=$((BYTES / 16777216 + 1)) conv=fsync 2>&1)
dd_bytes=$(awk '/bytes/ {print $1}' <<< "$dd_out")
dd_s=$(awk '/bytes/ {for (i = 1; i <= NF; i++) if ($i == "s,") print $(i-1)}' <<< "$dd_out")
rm -f "$DIR/dd.bin"

awk -v b="$BYTES" -v w="$write_s" -v r="$read_s" -v db="$dd_bytes" -v ds="$dd_s" \
    -v v="$verify_s" -v n="$((LAYERS * WIDTH))" -v d="$DIM" -v ranks="$RANKS" -v cached="$cached" 'BEGIN {
    dd = db / ds / 1e9
    printf "checkpoint of %d particles, D = %d: %.2f GB, %d ranks\n", n, d, b / 1e9, ranks
    printf "%-28s %10s %10s %10s\n", "", "seconds", "GB/s", "vs dd"
    printf "%-28s %10.2f %10.3f %10.2f\n", "dd conv=fsync (raw write)", ds, dd, 1
    printf "%-28s %10.2f %10.3f %10.2f\n", "mfres checkpoint write", w, b / w / 1e9, b / w / 1e9 / dd
    printf "%-28s %10.2f %10.3f %10.2f  (%s)\n", "mfres checkpoint read", r, b / r / 1e9, b / r / 1e9 / dd, cached
    printf "%-28s %10.2f %10.3f %10.2f  (%s)\n", "mfres info (verify, whole)", v, b / v / 1e9, b / v / 1e9 / dd, cached
}'
