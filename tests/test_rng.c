/* test_rng.c: the deterministic generator: reproducible, independent streams, unbiased. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "rng.h"

int main(void) {
    rng_t a, b, c;
    rng_seed(&a, 42, RNG_SHUFFLE, 3, 0);
    rng_seed(&b, 42, RNG_SHUFFLE, 3, 0);
    rng_seed(&c, 42, RNG_INIT, 3, 0);
    int same = 1, diff_purpose = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rng_next(&a), y = rng_next(&b), z = rng_next(&c);
        same &= x == y;
        diff_purpose += x != z;
    }
    CHECK(same);
    CHECK(diff_purpose > 990);

    /* (1, 2) and (2, 1) are different streams */
    rng_seed(&a, 7, RNG_TEST, 1, 2);
    rng_seed(&b, 7, RNG_TEST, 2, 1);
    CHECK(rng_next(&a) != rng_next(&b));

    /* rng_below: chi-square over 10 buckets, 200000 draws; 99.9% quantile of chi2(9) = 27.9 */
    enum { BUCKETS = 10, DRAWS = 200000 };
    long hist[BUCKETS] = {0};
    rng_seed(&a, 1, RNG_TEST, 0, 0);
    for (int i = 0; i < DRAWS; i++) hist[rng_below(&a, BUCKETS)]++;
    double chi2 = 0, expect = (double)DRAWS / BUCKETS;
    for (int k = 0; k < BUCKETS; k++) chi2 += (hist[k] - expect) * (hist[k] - expect) / expect;
    CHECK_MSG(chi2 < 27.9, "chi2 = %g", chi2);

    /* uniform in [0, 1), normal with mean 0 and variance 1 (5 sigma bounds) */
    double lo = 1, hi = 0, sum = 0, sum2 = 0;
    const int N = 100000;
    for (int i = 0; i < N; i++) {
        double u = rng_uniform(&a);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        double g = rng_normal(&a);
        sum += g;
        sum2 += g * g;
    }
    CHECK(lo >= 0 && hi < 1);
    CHECK_CLOSE(sum / N, 0.0, 5.0 / sqrt(N), 0);
    CHECK_CLOSE(sum2 / N, 1.0, 5.0 * sqrt(2.0 / N), 0);

    /* shuffle: a permutation, and not the identity */
    int32_t idx[1000];
    for (int i = 0; i < 1000; i++) idx[i] = i;
    rng_shuffle_int32(&a, idx, 1000);
    int seen[1000] = {0}, moved = 0;
    for (int i = 0; i < 1000; i++) {
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    int perm = 1;
    for (int i = 0; i < 1000; i++) perm &= seen[i] == 1;
    CHECK(perm);
    CHECK(moved > 900);
    return check_exit();
}
