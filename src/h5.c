/*
 * h5: shared helpers of the HDF5 readers (see h5.h).
 */
#include "h5.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

hid_t h5_open_read(const char *path, char *why, size_t len)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* callers write their own messages */
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
