/*
 * Tests of train's schedules: minibatches without replacement keyed by the
 * step, and layer orders.
 */
#include "mpi_cmocka.h"

#include <string.h>

#include "config.h"
#include "train.h"

static void test_batches(void **state)
{
    (void)state;
    struct mf_config cfg;
    config_defaults(&cfg);
    enum { N = 50, B = 20 };
    int64_t idx[N], again[N], scratch[N];
    for (int i = 0; i < N; i++)
        scratch[i] = i;
    train_batch_indices(&cfg, N, 3, idx, scratch); /* batch = 0: everything, in order */
    for (int i = 0; i < N; i++)
        assert_int_equal(idx[i], i);
    cfg.train.batch = B;
    int counts[N] = {0};
    const int steps = 4000;
    for (int k = 0; k < steps; k++) {
        int seen[N] = {0};
        train_batch_indices(&cfg, N, k, idx, scratch);
        for (int i = 0; i < B; i++) {
            assert_true(idx[i] >= 0 && idx[i] < N);
            assert_int_equal(seen[idx[i]]++, 0); /* without replacement */
            counts[idx[i]]++;
        }
    }
    for (int i = 0; i < N; i++) /* the scratch is the identity again */
        assert_int_equal(scratch[i], i);
    for (int i = 0; i < N; i++) /* every sample equally likely */
        assert_close(counts[i], steps * (double)B / N, 0, 5 * sqrt(steps * 0.4 * 0.6));
    train_batch_indices(&cfg, N, 7, idx, scratch);
    train_batch_indices(&cfg, N, 7, again, scratch);
    assert_memory_equal(idx, again, B * sizeof(int64_t));
    train_batch_indices(&cfg, N, 8, again, scratch);
    assert_memory_not_equal(idx, again, B * sizeof(int64_t));
}

static void test_layer_orders(void **state)
{
    (void)state;
    struct mf_config cfg;
    config_defaults(&cfg);
    cfg.model.layers = 6;
    int64_t order[6], other[6];
    train_layer_order(&cfg, 1, order);
    for (int k = 0; k < 6; k++)
        assert_int_equal(order[k], k);
    cfg.train.order = MF_ORDER_SHUFFLE;
    train_layer_order(&cfg, 1, order);
    int differs = 0;
    for (int k = 2; k < 30 && !differs; k++) {
        train_layer_order(&cfg, k, other);
        differs = memcmp(order, other, sizeof order) != 0;
    }
    assert_true(differs);
    /* The same on every rank, without communication. */
    int64_t root[6];
    memcpy(root, order, sizeof root);
    MPI_Bcast(root, 6, MPI_INT64_T, 0, MPI_COMM_WORLD);
    assert_memory_equal(order, root, sizeof order);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_batches),
    cmocka_unit_test(test_layer_orders),
};
MPI_CMOCKA_MAIN(tests)
