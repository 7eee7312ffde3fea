/*
 * shared_fs: files and directories that every node must see alike.
 *
 * Parallel HDF5 opens a file collectively; a rank that cannot see the file
 * (a path on a node-local /tmp, a file system missing on one node) fails
 * while the others wait for it, and with Open MPI's OMPIO the job then
 * hangs. So before each collective open, one rank per node checks the
 * path, all ranks agree, and a failure is one message naming the path, the
 * first failing rank, its host and the reason (errno).
 */
#ifndef MFRES_SHARED_FS_H
#define MFRES_SHARED_FS_H

#include <mpi.h>
#include <stddef.h>

/* Every node can open `path` as a regular file for reading, and sees the
 * file rank 0 sees (same size and modification time). Returns 0, or -1 with
 * "WHAT 'PATH': problem (rank R on HOST)" in err, on every rank alike.
 * Collective. */
int shared_fs_check_file(const char *what, const char *path, char *err, size_t errlen,
                         MPI_Comm comm);

/* Every node sees the directory `dir` (which rank 0 has created) as rank 0
 * sees it, and may create files in it: rank 0 writes a probe file holding a
 * random token into it, one rank per node reads the token back, rank 0
 * removes the probe. Returns 0, or -1 with "directory 'DIR': problem (rank
 * R on HOST)" in err, on every rank alike. Collective. */
int shared_fs_check_dir(const char *dir, char *err, size_t errlen, MPI_Comm comm);

#endif
