/*
 * h5: what the HDF5 code of mfres shares: the serial read-only open of the
 * readers (data files, checkpoints), and the parallel file access and
 * per-rank selections of the checkpoint writer and reader.
 */
#ifndef MFRES_H5_H
#define MFRES_H5_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>

/* Open an existing HDF5 file read-only, serially, with HDF5's error stack
 * printing off and file locking off (it fails on many parallel file
 * systems). Returns the file, or a negative id with the reason in why:
 * "cannot open: <errno text>", "not an HDF5 file" or "cannot open as HDF5
 * (truncated or damaged?)". Not collective. */
hid_t h5_open_read(const char *path, char *why, size_t len);

/* File access with MPI-IO on comm, collective metadata reads and writes,
 * and file locking off. */
hid_t h5_parallel_fapl(MPI_Comm comm);

/* The rows of a layer-major array [L][rows_per_layer][width] that a rank
 * holds: rows [first, first + count) of every layer. */
struct h5_rows {
    hsize_t layers, rows_per_layer, first, count, width;
};

/* Select a rank's rows in a file space of dims [lead][L*rows][width]
 * (lead = 0: no leading time dimension; width = 0: no trailing one). */
void h5_select_rows(hid_t space, const struct h5_rows *s, int lead);

#endif
