/*
 * h5: what the HDF5 code of mfres shares (see h5.h).
 */
#include "h5.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

hid_t h5_open_read(const char *path, char *why, size_t len)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* callers write their own messages */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) { /* a FIFO or device could block */
        snprintf(why, len, "not a regular file");
        return H5I_INVALID_HID;
    }
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        snprintf(why, len, "cannot open: %s", strerror(errno));
        return H5I_INVALID_HID;
    }
    fclose(probe);
    if (H5Fis_hdf5(path) <= 0) {
        snprintf(why, len, "not an HDF5 file");
        return H5I_INVALID_HID;
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_file_locking(fapl, 0, 1);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (file < 0)
        snprintf(why, len, "cannot open as HDF5 (truncated or damaged?)");
    return file;
}

hid_t h5_parallel_fapl(MPI_Comm comm)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
    H5Pset_all_coll_metadata_ops(fapl, 1);
    H5Pset_coll_metadata_write(fapl, 1);
    H5Pset_file_locking(fapl, 0, 1); /* locks fail on many parallel file systems */
    return fapl;
}

void h5_select_rows(hid_t space, const struct h5_rows *s, int lead)
{
    if (s->count == 0 || s->layers == 0) {
        H5Sselect_none(space);
        return;
    }
    hsize_t start[3], stride[3], count[3], block[3];
    int r = 0;
    if (lead)
        start[r] = 0, stride[r] = 1, count[r] = 1, block[r] = 1, r++;
    start[r] = s->first, stride[r] = s->rows_per_layer, count[r] = s->layers,
    block[r] = s->count, r++;
    if (s->width)
        start[r] = 0, stride[r] = 1, count[r] = 1, block[r] = s->width, r++;
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, stride, count, block);
}

static inline uint64_t checksum_term(uint64_t element, uint64_t index)
{
    uint64_t y = (element ^ (index + 1) * 0x9e3779b97f4a7c15u) * 0xbf58476d1ce4e5b9u;
    return y ^ (y >> 32);
}

/* One loop per element size, so that each vectorizes. */
#define CHECKSUM_LOOP(type)                                                                    \
    for (uint64_t i = 0; i < count; i++) {                                                     \
        type e;                                                                                \
        memcpy(&e, bytes + i * sizeof e, sizeof e);                                            \
        sum += checksum_term(e, first + i);                                                    \
    }

uint64_t h5_checksum(const void *data, uint64_t count, size_t size, uint64_t first)
{
    const unsigned char *bytes = data;
    uint64_t sum = 0;
    switch (size) {
    case 8: CHECKSUM_LOOP(uint64_t) break;
    case 4: CHECKSUM_LOOP(uint32_t) break;
    case 2: CHECKSUM_LOOP(uint16_t) break;
    case 1: CHECKSUM_LOOP(uint8_t) break;
    default: return h5_checksum(data, count * size, 1, first * size);
    }
    return sum;
}
