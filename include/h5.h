/*
 * h5: what the HDF5 readers of mfres share (data files and checkpoints).
 */
#ifndef MFRES_H5_H
#define MFRES_H5_H

#include <hdf5.h>
#include <stddef.h>

/* Open an existing HDF5 file read-only, serially, with HDF5's error stack
 * printing off and file locking off (it fails on many parallel file
 * systems). Returns the file, or a negative id with the reason in why:
 * "cannot open: <errno text>", "not an HDF5 file" or "cannot open as HDF5
 * (truncated or damaged?)". Not collective. */
hid_t h5_open_read(const char *path, char *why, size_t len);

#endif
