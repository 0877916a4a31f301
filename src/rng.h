/* rng.h: deterministic random numbers keyed by (seed, purpose, indices).
 *
 * Every random choice in ccdl (shuffles, init, augmentation, random topologies) is a pure
 * function of the experiment seed and a few integers, so every rank derives the same
 * stream without communication and traces do not depend on the rank layout.
 * Generator: xoshiro256** seeded through splitmix64 (Blackman & Vigna). */
#ifndef CCDL_RNG_H
#define CCDL_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_t;

/* Purposes keep streams for different jobs independent even with equal indices. */
enum {
    RNG_SHUFFLE = 1,  /* per-epoch data permutation: (epoch) */
    RNG_INIT = 2,     /* parameter initialisation */
    RNG_AUGMENT = 3,  /* per (epoch, worker) augmentation */
    RNG_TOPOLOGY = 4, /* random topologies: (round) */
    RNG_TEST = 5,     /* tests and benchmarks */
    RNG_PARTITION = 6 /* non-i.i.d. (Dirichlet) split: (attempt, class) */
};

/* Seed a stream from the experiment seed, a purpose and two indices. */
void rng_seed(rng_t *r, uint64_t seed, uint64_t purpose, uint64_t a, uint64_t b);
uint64_t rng_next(rng_t *r);
/* Uniform integer in [0, bound) without modulo bias (Lemire's method). bound > 0. */
uint64_t rng_below(rng_t *r, uint64_t bound);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform(rng_t *r);
/* Standard normal (Box-Muller, one value per call). */
double rng_normal(rng_t *r);
/* Fisher-Yates shuffle of idx[0..count). */
void rng_shuffle_int32(rng_t *r, int32_t *idx, int64_t count);

#endif
