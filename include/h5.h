/*
 * h5: what the HDF5 code of mfres shares: the serial read-only open of the
 * readers (data files, checkpoints), the parallel file access and per-rank
 * selections of the checkpoint writer and reader, and dataset checksums.
 */
#ifndef MFRES_H5_H
#define MFRES_H5_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

/* Call on_failure(ctx, "the call's text") when an HDF5 call returns a
 * negative value (an error); on_failure does not return. */
#define H5_TRY(call, on_failure, ctx)                                                          \
    do {                                                                                       \
        if ((call) < 0)                                                                        \
            on_failure(ctx, #call);                                                            \
    } while (0)

/* Open an existing HDF5 file read-only, serially, with HDF5's error stack
 * printing off and the file locking of h5_set_access. Returns the file, or
 * a negative id with the reason in why: "cannot open: <errno text>", "not
 * an HDF5 file" or "cannot open as HDF5 (truncated or damaged?)". Not
 * collective. */
hid_t h5_open_read(const char *path, char *why, size_t len);

/* How later opens access files, from [output]: HDF5 file locking (enum
 * mf_file_locking: off, the default, as locks fail on many parallel file
 * systems; on; best_effort) and MPI-IO hints for the parallel files, as
 * "name=value" items separated by spaces or commas, given to MPI_Info
 * unchecked (MPI ignores names it does not know). Returns 0, or -1 with a
 * message naming output.mpio_hints for an item that is not name=value.
 * Not collective; every rank calls it with the same values. */
int h5_set_access(int file_locking, const char *mpio_hints, char *err, size_t len);

/* Set a file access property list's file locking as h5_set_access chose. */
void h5_file_locking(hid_t fapl);

/* File access with MPI-IO on comm and the hints of h5_set_access,
 * collective metadata reads and writes, and its file locking. */
hid_t h5_parallel_fapl(MPI_Comm comm);

/* The native floating-point type of `size` bytes (4 or 8): the particles'
 * type in memory and in files. */
hid_t h5_float_type(size_t size);

/* After a collective H5Fopen or H5Fcreate of path: 1 when every rank has
 * the file, 0 when none has (nothing to close). When only some have it,
 * the job is aborted, as closing it is collective and cannot be done by
 * those ranks alone. Collective. */
int h5_opened(hid_t file, const char *path, MPI_Comm comm);

/* The rows of a layer-major array [L][rows_per_layer][width] that a rank
 * holds: rows [first, first + count) of every layer. */
struct h5_rows {
    hsize_t layers, rows_per_layer, first, count, width;
};

/* Select a rank's rows in a file space of dims [lead][L*rows][width]
 * (lead = 0: no leading time dimension; width = 0: no trailing one). */
void h5_select_rows(hid_t space, const struct h5_rows *s, int lead);

/* Checksum of `count` elements of `size` bytes each, the first of which is
 * element `first` of its dataset in row-major order.
 *
 * A dataset's checksum is the sum modulo 2^64, over its elements, of
 *     mix(e_i XOR (i + 1) K),  mix(x) = y XOR (y >> 32), y = x C  (mod 2^64)
 * where e_i is element i read as an unsigned integer of its size (1, 2, 4
 * or 8 bytes, in the host's byte order; a longer element, such as a
 * fixed-length string, counts as that many 1-byte elements), K =
 * 0x9e3779b97f4a7c15 and C = 0xbf58476d1ce4e5b9. Why this form: a sum of
 * per-element terms can be computed by each rank over its own rows and
 * added across ranks in any order, so the writer's and the reader's
 * partitions need not agree; mix is a bijection, so changing any one
 * element always changes the sum, and the index term makes moved or
 * swapped elements count; it costs one multiply per element, a few percent
 * of the time to write the bytes. It guards against damage, not forgery.
 * analysis/mfresfile.py holds an independent implementation. */
uint64_t h5_checksum(const void *data, uint64_t count, size_t size, uint64_t first);

/* 0 when dataset `name` of file (opened by every rank of comm) matches its
 * checksum attribute; else -1 with why: "has no checksum", "cannot be read"
 * or "does not match its checksum (damaged)". Each rank reads an equal
 * share of the rows of the first dimension longer than 1, in blocks of a
 * few MiB, with independent transfers. Collective. */
int h5_verify(hid_t file, const char *name, char *why, size_t len, MPI_Comm comm);

#endif
