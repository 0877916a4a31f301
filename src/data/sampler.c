/* sampler.c: see sampler.h. */
#include "sampler.h"

#include <stdlib.h>
#include <string.h>

int sampler_init(sampler *s, const dataset *ds, int n, int first, int local, int batch,
                 int dirichlet, double alpha, int augment, uint64_t seed, ccdl_error *err) {
    memset(s, 0, sizeof *s);
    s->ds = ds, s->n = n, s->first = first, s->local = local, s->batch = batch, s->seed = seed;
    s->shard = data_shard_size(ds->count, n);
    s->steps_per_epoch = s->shard / batch;
    if (s->steps_per_epoch < 1)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "schedule.local_batch: %d exceeds the %lld samples each of %d workers "
                         "gets from %lld training samples",
                         batch, (long long)s->shard, n, (long long)ds->count);
    s->dirichlet = dirichlet;
    if (dirichlet) {
        /* every worker needs at least one batch of its own samples */
        if (data_partition_dirichlet(ds, n, alpha, batch, seed, &s->part, err)) return -1;
        s->order = xcalloc((size_t)local, sizeof(int32_t *));
        for (int w = 0; w < local; w++) {
            int i = first + w;
            s->order[w] =
                xmalloc_array((size_t)(s->part.offset[i + 1] - s->part.offset[i]), sizeof(int32_t));
        }
    } else {
        s->perm = xmalloc_array((size_t)ds->count, sizeof(int32_t));
    }
    s->idx = xmalloc_array((size_t)batch, sizeof(int32_t));
    s->aug.crop_pad = augment ? 4 : 0;
    s->aug.flip = augment ? 1 : 0;
    s->rng = xcalloc((size_t)local, sizeof(rng_t));
    return 0;
}

void sampler_free(sampler *s) {
    if (s->order)
        for (int w = 0; w < s->local; w++) free(s->order[w]);
    free(s->order);
    if (s->dirichlet) data_partition_free(&s->part);
    free(s->perm);
    free(s->idx);
    free(s->rng);
    memset(s, 0, sizeof *s);
}

void sampler_epoch(sampler *s, int epoch) {
    if (s->dirichlet)
        for (int w = 0; w < s->local; w++)
            data_partition_epoch_order(&s->part, s->first + w, s->seed, epoch, s->order[w]);
    else
        data_epoch_permutation(s->seed, epoch, s->ds->count, s->perm);
    for (int w = 0; w < s->local; w++)
        rng_seed(&s->rng[w], s->seed, RNG_AUGMENT, (uint64_t)epoch, (uint64_t)(s->first + w));
}

void sampler_batch(sampler *s, int w, int64_t k, float *x, int32_t *y) {
    int i = s->first + w;
    const int32_t *idx;
    if (s->dirichlet) {
        int64_t len = s->part.offset[i + 1] - s->part.offset[i];
        for (int a = 0; a < s->batch; a++) s->idx[a] = s->order[w][(k * s->batch + a) % len];
        idx = s->idx;
    } else {
        idx = s->perm + (int64_t)i * s->shard + k * s->batch;
    }
    dataset_fill_batch_augmented(s->ds, idx, s->batch, &s->aug, &s->rng[w], x, y);
}

void sampler_seek(sampler *s, int epoch, int64_t k) {
    sampler_epoch(s, epoch);
    for (int w = 0; w < s->local; w++)
        for (int64_t j = 0; j < k; j++) augment_skip(&s->aug, &s->rng[w], s->batch);
}
