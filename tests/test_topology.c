/* test_topology.c: every kind's rows are symmetric and doubly stochastic in every round,
 * with the degrees and weights NOTES.md section 4 gives; mixing rates match their closed
 * forms; random matchings are pure functions of (seed, round) with the right distribution;
 * unsupported n is refused with a message. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "topology.h"
#include "traffic.h"

/* Dense W from the rows, checking column order on the way. */
static double *dense_checked(const topology *t, int64_t round) {
    int n = t->n, m = topology_max_row(t);
    double *W = calloc((size_t)n * n, sizeof(double));
    int cols[m];
    double w[m];
    for (int i = 0; i < n; i++) {
        int k = topology_row(t, round, i, cols, w);
        CHECK(k >= 1 && k <= m);
        for (int a = 0; a < k; a++) {
            if (a) CHECK(cols[a] > cols[a - 1]);
            CHECK(cols[a] >= 0 && cols[a] < n);
            W[i * n + cols[a]] = w[a];
        }
    }
    return W;
}

static void check_mixing(const topology *t, int64_t round) {
    int n = t->n, ok = 1;
    double *W = dense_checked(t, round);
    for (int i = 0; i < n; i++) {
        double row = 0, col = 0;
        for (int j = 0; j < n; j++) {
            row += W[i * n + j], col += W[j * n + i];
            ok &= W[i * n + j] >= 0 && W[i * n + j] == W[j * n + i];
        }
        ok &= fabs(row - 1.0) < 1e-12 && fabs(col - 1.0) < 1e-12;
    }
    CHECK_MSG(ok, "%s n=%d round %lld: not symmetric doubly stochastic",
              topology_kind_names[t->kind], n, (long long)round);
    /* agrees with topology_dense */
    double *D = topology_dense(t, round);
    CHECK(memcmp(D, W, sizeof(double) * n * n) == 0);
    free(D);
    free(W);
}

static double ring_p(int n) {
    double l = (1 + 2 * cos(2 * M_PI / n)) / 3;
    return 1 - l * l;
}

/* traffic.c's neighbour counts (cached per period, complete graphs and matchings in closed
 * form) against the non-zero off-diagonal entries of the dense W^t of the same round. */
static void check_traffic(const topology *t, int64_t round) {
    traffic_model m;
    traffic_model_init(&m, t);
    traffic got = {0};
    traffic_gossip_round(&m, round, 10, 2, &got);
    double *W = topology_dense(t, round);
    int n = t->n, most = 0;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        int deg = 0;
        for (int j = 0; j < n; j++) deg += j != i && W[(size_t)i * n + j] != 0;
        sum += deg;
        if (deg > most) most = deg;
    }
    free(W);
    CHECK_MSG(fabs(got.messages_mean - 2 * sum / n) < 1e-12 && got.messages_max == 2 * most,
              "kind %d n %d round %lld: %g %g, want %g %d", t->kind, n, (long long)round,
              got.messages_mean, got.messages_max, 2 * sum / n, 2 * most);
    CHECK(fabs(got.bytes_mean - got.messages_mean * 40) < 1e-9 && got.bytes_max == 80.0 * most);
    traffic_model_free(&m);
}

int main(void) {
    /* rows of every kind for every n it supports, over several rounds */
    for (int kind = 0; kind < TOPO_KIND_COUNT; kind++)
        for (int n = 1; n <= 70; n += (n < 20 ? 1 : 11)) {
            ccdl_error err;
            if (topology_check(kind, n, &err) != 0) {
                CHECK_MSG(strstr(err.text, "topology.kind") || strstr(err.text, "workers"), "%s",
                          err.text);
                continue;
            }
            topology t = {kind, n, 42};
            for (int64_t r = 0; r < 9; r++) check_mixing(&t, r), check_traffic(&t, r);
        }

    /* the counts spelled out: a ring of 2 has one neighbour, an odd matching idles one */
    {
        traffic_model m;
        traffic a = {0}, b = {0}, c = {0};
        topology ring2 = {TOPO_RING, 2, 1}, match5 = {TOPO_RANDOM_MATCHING, 5, 1};
        traffic_model_init(&m, &ring2);
        traffic_gossip_round(&m, 0, 1, 1, &a);
        traffic_model_free(&m);
        CHECK(a.messages_mean == 1 && a.messages_max == 1 && a.bytes_max == 4);
        traffic_model_init(&m, &match5);
        traffic_gossip_round(&m, 3, 1, 1, &b);
        traffic_model_free(&m);
        CHECK(fabs(b.messages_mean - 0.8) < 1e-15 && b.messages_max == 1);
        traffic_allreduce(4, 100, 4, &c); /* ring: 6 messages of 25 floats */
        traffic_reduce_scalars(5, 2, &c); /* recursive doubling: 3 messages of 2 doubles */
        CHECK(c.messages_max == 9 && c.bytes_mean == 6 * 100 + 3 * 16);
    }

    /* refusals */
    ccdl_error err;
    CHECK(topology_check(TOPO_RING, 1, &err) != 0 && strstr(err.text, "ring needs workers >= 2"));
    CHECK(topology_check(TOPO_BIPARTITE_EXPONENTIAL, 7, &err) != 0 && strstr(err.text, "even"));
    CHECK(topology_check(TOPO_TORUS, 13, &err) != 0 && strstr(err.text, "rows x cols"));
    CHECK(topology_check(TOPO_TORUS, 3, &err) != 0);
    CHECK(topology_check(TOPO_COMPLETE, 0, &err) != 0);
    CHECK(topology_check(TOPO_RANDOM_MATCHING, 1, &err) != 0);
    CHECK(topology_kind_from_name("random_matching") == TOPO_RANDOM_MATCHING);
    CHECK(topology_kind_from_name("rng") == -1);

    /* shapes: ring 1/3, exponential offsets, one-peer hop 2^(r mod m), bipartite offset
     * 2^k - 1 with k cycling from 1, torus 4 x 4 neighbours */
    {
        topology t = {TOPO_ONE_PEER_EXPONENTIAL, 16, 1};
        int cols[3];
        double w[3];
        /* m = floor(log2 15) + 1 = 4: rounds 0..3 use hops 1, 2, 4, 8; round 4 hop 1 again */
        int hops[5] = {1, 2, 4, 8, 1};
        for (int r = 0; r < 5; r++) {
            int k = topology_row(&t, r, 5, cols, w);
            int want_k = hops[r] == 8 ? 2 : 3;
            CHECK(k == want_k);
            CHECK(cols[k - 1] == 5 + hops[r] || cols[0] == 5 - hops[r]);
            CHECK_CLOSE(w[0], 1.0 / want_k, 1e-15, 0);
        }
        topology b = {TOPO_BIPARTITE_EXPONENTIAL, 16, 1};
        /* K = 4: offsets 1, 3, 7, 15 */
        int offs[5] = {1, 3, 7, 15, 1};
        for (int r = 0; r < 5; r++) {
            int partner = (4 + offs[r]) % 16; /* even 4 talks to odd 4 + 2^k - 1 */
            CHECK(topology_row(&b, r, 4, cols, w) == 2);
            CHECK((cols[0] == 4 && cols[1] == partner) || (cols[0] == partner && cols[1] == 4));
            CHECK_CLOSE(w[0], 0.5, 0, 0);
            CHECK(topology_row(&b, r, partner, cols, w) == 2 && (cols[0] == 4 || cols[1] == 4));
        }
        topology e = {TOPO_EXPONENTIAL, 32, 1};
        int ecols[11];
        double ew[11];
        /* hops 1,2,4,8,16 both ways: +-1 +-2 +-4 +-8 and 16 (= -16): 9 neighbours */
        CHECK(topology_row(&e, 0, 0, ecols, ew) == 10);
        int want[10] = {0, 1, 2, 4, 8, 16, 24, 28, 30, 31};
        CHECK(memcmp(ecols, want, sizeof want) == 0);
        CHECK_CLOSE(ew[3], 0.1, 1e-15, 0);
        topology tor = {TOPO_TORUS, 16, 1};
        int tcols[5];
        double tw[5];
        CHECK(topology_row(&tor, 0, 5, tcols, tw) == 5); /* (1,1): 1, 4, 6, 9 */
        int twant[5] = {1, 4, 5, 6, 9};
        CHECK(memcmp(tcols, twant, sizeof twant) == 0);
    }

    /* random matching: a perfect matching (n even), pure in (seed, round), fresh per round,
     * and Pr(i ~ j) = 1/(n-1) empirically */
    {
        enum { N = 8, ROUNDS = 20000 };
        topology t = {TOPO_RANDOM_MATCHING, N, 9};
        topology t2 = {TOPO_RANDOM_MATCHING, N, 10};
        long pair01 = 0, changes = 0, seed_diff = 0;
        for (int64_t r = 0; r < ROUNDS; r++) {
            double *W = topology_dense(&t, r), *V = topology_dense(&t, r);
            double *S = topology_dense(&t2, r);
            CHECK(memcmp(W, V, sizeof(double) * N * N) == 0);
            seed_diff += memcmp(W, S, sizeof(double) * N * N) != 0;
            for (int i = 0; i < N; i++) CHECK(W[i * N + i] == 0.5);
            pair01 += W[0 * N + 1] > 0;
            if (r) {
                double *P = topology_dense(&t, r - 1);
                changes += memcmp(P, W, sizeof(double) * N * N) != 0;
                free(P);
            }
            free(W), free(V), free(S);
        }
        double freq = (double)pair01 / ROUNDS, want = 1.0 / (N - 1);
        CHECK_CLOSE(freq, want, 5 * sqrt(want * (1 - want) / ROUNDS), 0);
        CHECK(changes > ROUNDS * 0.8 && seed_diff > ROUNDS * 0.8);
        topology odd = {TOPO_RANDOM_MATCHING, 7, 9};
        int cols[2];
        double w[2];
        int idle = 0;
        for (int i = 0; i < 7; i++) idle += topology_row(&odd, 3, i, cols, w) == 1;
        CHECK(idle == 1);
    }

    /* mixing rates against closed forms (NOTES.md section 3) */
    for (int n = 4; n <= 64; n *= 2) {
        topology_mixing m;
        topology ring = {TOPO_RING, n, 1}, comp = {TOPO_COMPLETE, n, 1},
                 rm = {TOPO_RANDOM_MATCHING, n, 1};
        CHECK(topology_mixing_stats(&ring, &m, &err) == 0);
        CHECK_CLOSE(m.p, ring_p(n), 1e-9, 0);
        CHECK(m.degree == 2 && m.period == 1);
        CHECK_CLOSE(m.spectral_gap, 1 - sqrt(1 - ring_p(n)), 1e-9, 0);
        CHECK(topology_mixing_stats(&comp, &m, &err) == 0);
        CHECK_CLOSE(m.p, 1.0, 1e-9, 0);
        CHECK(m.degree == n - 1);
        CHECK(topology_mixing_stats(&rm, &m, &err) == 0);
        CHECK_CLOSE(m.p, 0.5 + 0.5 / (n - 1), 1e-9, 0);
        CHECK(m.degree == 1 && m.period == 0);
    }
    {
        topology_mixing m;
        topology rm7 = {TOPO_RANDOM_MATCHING, 7, 1}; /* odd: E[P] = J/n, p = 1/2 */
        CHECK(topology_mixing_stats(&rm7, &m, &err) == 0);
        CHECK_CLOSE(m.p, 0.5, 1e-9, 0);
        /* one-peer exponential with n a power of 2 reaches exact average in one period
         * (Ying et al. 2021): the product over a period is J/n, but p per round in
         * expectation is below 1 */
        topology op = {TOPO_ONE_PEER_EXPONENTIAL, 16, 1};
        CHECK(topology_mixing_stats(&op, &m, &err) == 0);
        CHECK(m.period == 4 && m.degree == 2 && m.p > 0 && m.p < 1);
        topology tor = {TOPO_TORUS, 16, 1}; /* 4 x 4: eigenvalues (1 + 2cos a + 2cos b) / 5 */
        CHECK(topology_mixing_stats(&tor, &m, &err) == 0);
        double l = (1 + 2 * cos(2 * M_PI / 4) + 2) / 5;
        CHECK_CLOSE(m.p, 1 - l * l, 1e-9, 0);
        CHECK(m.degree == 4);
        topology one = {TOPO_COMPLETE, 1, 1};
        CHECK(topology_mixing_stats(&one, &m, &err) == 0 && m.p == 1.0);
    }
    return check_exit();
}
