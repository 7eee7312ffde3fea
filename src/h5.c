/*
 * h5: what the HDF5 code of mfres shares (see h5.h).
 */
#include "h5.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "comm.h"
#include "config.h"
#include "log.h"

/* What h5_set_access chose. */
static int file_locking = MF_LOCKING_OFF;
static char mpio_hints[MF_PATH_MAX];

/* Apply each name=value item of text to info (MPI_INFO_NULL: only check
 * them). Returns 0, or -1 with err. */
static int parse_hints(const char *text, MPI_Info info, char *err, size_t len)
{
    char copy[MF_PATH_MAX], *save = NULL;
    snprintf(copy, sizeof copy, "%s", text);
    for (char *item = strtok_r(copy, " ,", &save); item; item = strtok_r(NULL, " ,", &save)) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1] || strchr(eq + 1, '=') ||
            eq - item >= MPI_MAX_INFO_KEY) {
            snprintf(err, len, "[output] mpio_hints: '%s' is not name=value (items are "
                     "separated by spaces or commas)", item);
            return -1;
        }
        *eq = '\0';
        if (info != MPI_INFO_NULL)
            MPI_Info_set(info, item, eq + 1);
    }
    return 0;
}

int h5_set_access(int locking, const char *hints, char *err, size_t len)
{
    if (parse_hints(hints, MPI_INFO_NULL, err, len) != 0)
        return -1;
    file_locking = locking;
    snprintf(mpio_hints, sizeof mpio_hints, "%s", hints);
    return 0;
}

void h5_file_locking(hid_t fapl)
{
    H5Pset_file_locking(fapl, file_locking != MF_LOCKING_OFF,
                        file_locking != MF_LOCKING_ON);
}

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
    h5_file_locking(fapl);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (file < 0)
        snprintf(why, len, "cannot open as HDF5 (truncated or damaged?)");
    return file;
}

hid_t h5_parallel_fapl(MPI_Comm comm)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    MPI_Info info = MPI_INFO_NULL;
    if (mpio_hints[0]) {
        char err[64];
        MPI_Info_create(&info);
        parse_hints(mpio_hints, info, err, sizeof err); /* checked by h5_set_access */
    }
    H5Pset_fapl_mpio(fapl, comm, info); /* HDF5 keeps a copy of info */
    if (info != MPI_INFO_NULL)
        MPI_Info_free(&info);
    H5Pset_all_coll_metadata_ops(fapl, 1);
    H5Pset_coll_metadata_write(fapl, 1);
    h5_file_locking(fapl);
    return fapl;
}

int h5_opened(hid_t file, const char *path, MPI_Comm comm)
{
    enum { OPENED = 1, FAILED = 2 };
    const int seen = comm_or(file >= 0 ? OPENED : FAILED, comm);
    if (seen == (OPENED | FAILED))
        comm_fatal_unless(file < 0, comm, "'%s' is open on some ranks only (a collective "
                          "close cannot follow): stopping the job", path);
    return seen == OPENED;
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

int h5_verify(hid_t file, const char *name, char *why, size_t len, MPI_Comm comm)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t ftype = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    hid_t space = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    uint64_t stored = 0, sum = 0;
    int have = d >= 0 && H5Aexists(d, "checksum") > 0;
    if (have) {
        hid_t a = H5Aopen(d, "checksum", H5P_DEFAULT);
        have = a >= 0 && H5Aread(a, H5T_NATIVE_UINT64, &stored) >= 0;
        if (a >= 0)
            H5Aclose(a);
    }
    const H5T_class_t kind = ftype >= 0 ? H5Tget_class(ftype) : H5T_NO_CLASS;
    int read_ok = have && (kind == H5T_INTEGER || kind == H5T_FLOAT ||
                           (kind == H5T_STRING && !H5Tis_variable_str(ftype)));
    if (read_ok) {
        hid_t mtype = kind == H5T_STRING ? H5Tcopy(ftype) : H5Tget_native_type(ftype, H5T_DIR_ASCEND);
        const size_t size = H5Tget_size(mtype);
        hsize_t dims[H5S_MAX_RANK] = {0};
        const int rank = H5Sget_simple_extent_dims(space, dims, NULL);
        int split = 0; /* the dimension shared out: the first longer than 1 */
        while (split < rank - 1 && dims[split] == 1)
            split++;
        hsize_t rows = rank > 0 ? dims[split] : 1, row = 1;
        for (int i = split + 1; i < rank; i++)
            row *= dims[i];
        const int me = comm_rank(comm), ranks = comm_size(comm);
        const hsize_t first = rows * (hsize_t)me / (hsize_t)ranks;
        const hsize_t last = rows * (hsize_t)(me + 1) / (hsize_t)ranks;
        const hsize_t block = row * size > (4u << 20) ? 1 : (4u << 20) / (row * size);
        char *buf = xmalloc((size_t)(block * row * size));
        for (hsize_t r = first; r < last && read_ok; r += block) {
            const hsize_t n = last - r < block ? last - r : block, elements = n * row;
            hid_t mem = H5Screate_simple(1, &elements, NULL);
            if (rank > 0) {
                hsize_t start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
                memcpy(count, dims, sizeof count);
                start[split] = r, count[split] = n;
                H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
            }
            read_ok = H5Dread(d, mtype, mem, space, H5P_DEFAULT, buf) >= 0;
            sum += h5_checksum(buf, elements, size, r * row);
            H5Sclose(mem);
        }
        free(buf);
        H5Tclose(mtype);
    }
    if (space >= 0)
        H5Sclose(space);
    if (ftype >= 0)
        H5Tclose(ftype);
    if (d >= 0)
        H5Dclose(d);
    sum = comm_sum_u64(sum, comm);
    const char *problem = !comm_all_ok(have, comm)      ? "has no checksum"
                          : !comm_all_ok(read_ok, comm) ? "cannot be read"
                          : sum != stored               ? "does not match its checksum (damaged)"
                                                        : NULL;
    if (problem)
        snprintf(why, len, "%s", problem);
    return problem ? -1 : 0;
}

hid_t h5_float_type(size_t size)
{
    return size == sizeof(float) ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
}
