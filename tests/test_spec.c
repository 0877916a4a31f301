/* test_spec.c: parsing, defaults, the canonical round trip and error paths of specs.
 * The file-level bad-spec corpus is driven through the binary by bad_specs.sh. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "spec.h"
#include "topology.h"

static void expect_error(const char *json, const char *needle) {
    ccdl_spec s;
    ccdl_error err;
    ccdl_error_clear(&err);
    int rc = spec_parse(json, "t.json", &s, &err);
    CHECK_MSG(rc != 0, "accepted: %s", json);
    CHECK_MSG(err.kind == CCDL_ERR_INPUT, "kind %d", err.kind);
    CHECK_MSG(strstr(err.text, needle) != NULL, "'%s' lacks '%s'", err.text, needle);
    CHECK(strchr(err.text, '\n') == NULL);
}

int main(void) {
    ccdl_spec s;
    ccdl_error err;
    const char *good = "{\"name\": \"q\", \"seed\": 3, \"workers\": 16,"
                       " \"data\": {\"train_subset\": 1000},"
                       " \"model\": {\"hidden\": [64, 32]},"
                       " \"optimizer\": {\"momentum\": 0.5, \"nesterov\": false},"
                       " \"schedule\": {\"epochs\": 4, \"lr\": 0.05, \"decay_at\": [0.5]},"
                       " \"topology\": {\"kind\": \"complete\"},"
                       " \"communication\": {\"mode\": \"allreduce\"}}";
    CHECK(spec_parse(good, "t.json", &s, &err) == 0);
    CHECK(strcmp(s.name, "q") == 0 && s.seed == 3 && s.workers == 16);
    CHECK(s.data.train_subset == 1000);
    CHECK(s.model.n_hidden == 2 && s.model.hidden[0] == 64 && s.model.hidden[1] == 32);
    CHECK(s.optimizer.momentum == 0.5 && s.optimizer.nesterov == 0);
    CHECK(s.schedule.epochs == 4 && s.schedule.lr == 0.05 && s.schedule.n_decay == 1);
    CHECK(s.topology.kind == TOPO_COMPLETE && s.communication.mode == POLICY_ALLREDUCE);
    /* defaults */
    CHECK(s.schedule.local_batch == 32 && s.optimizer.weight_decay == 1e-4);
    CHECK(strcmp(s.trace.path, "q.h5") == 0);
    CHECK(strcmp(s.data.dataset, "fashion-mnist") == 0);

    /* canonical JSON: parsing it again gives the same canonical text and the same spec */
    char *canon = spec_canonical_json(&s);
    ccdl_spec s2;
    CHECK(spec_parse(canon, "canon", &s2, &err) == 0);
    char *canon2 = spec_canonical_json(&s2);
    CHECK(strcmp(canon, canon2) == 0);
    CHECK(memcmp(&s.schedule, &s2.schedule, sizeof s.schedule) == 0);
    CHECK(strstr(canon, "\"workers\":16") != NULL);
    free(canon);
    free(canon2);

    /* keys added later keep the canonical text of specs that leave them alone, and trailing
     * zero extra epochs are no extra epochs */
    CHECK(spec_parse("{\"schedule\": {\"decay_at\": [0.5], \"extra_epochs\": [3, 0]}}", "t.json",
                     &s, &err) == 0);
    CHECK(s.schedule.n_extra == 1 && s.schedule.extra_epochs[0] == 3 &&
          spec_total_epochs(&s) == 13);
    canon = spec_canonical_json(&s);
    CHECK(strstr(canon, "\"extra_epochs\":[3]") != NULL);
    free(canon);
    const char *plain = "{\"schedule\": {\"decay_at\": [0.5]}}";
    const char *zeros = "{\"schedule\": {\"decay_at\": [0.5], \"extra_epochs\": [0]},"
                        " \"communication\": {\"slowmo\": {\"tau\": 0}}}";
    CHECK(spec_parse(plain, "t.json", &s, &err) == 0);
    canon = spec_canonical_json(&s);
    CHECK(spec_parse(zeros, "t.json", &s2, &err) == 0);
    canon2 = spec_canonical_json(&s2);
    CHECK_MSG(strcmp(canon, canon2) == 0, "%s vs %s", canon, canon2);
    CHECK(strstr(canon, "slowmo") == NULL && strstr(canon, "extra_epochs") == NULL);
    free(canon);
    free(canon2);
    CHECK(spec_parse("{\"communication\": {\"slowmo\": {\"tau\": 4, \"beta\": 0.5}}}", "t.json", &s,
                     &err) == 0);
    canon = spec_canonical_json(&s);
    CHECK(strstr(canon, "\"slowmo\":{\"beta\":0.5,\"tau\":4}") != NULL);
    free(canon);

    CHECK(spec_parse("{}", "t.json", &s, &err) == 0);
    CHECK(s.workers == 8 && s.topology.kind == TOPO_RING);

    expect_error("{\"topology\": {\"kind\": \"rng\"}}",
                 "t.json: topology.kind: expected one of complete, ring, torus, exponential, "
                 "one_peer_exponential, bipartite_exponential, random_matching; got \"rng\"");
    expect_error("{\"workers\": \"8\"}", "workers: expected an integer; got a string");
    expect_error("{\"workers\": 0}", "workers: expected an integer in [1, 65536]; got 0");
    expect_error("{\"workers\": 2.5}", "workers: expected an integer");
    expect_error("{\"schedule\": {\"lr\": -0.1}}", "schedule.lr: expected a number in");
    expect_error("{\"schedule\": {\"epoch\": 3}}", "schedule.epoch: unknown key");
    expect_error("{\"colour\": 1}", "colour: unknown key");
    expect_error("{\"model\": {\"hidden\": [64, 0]}}", "model.hidden[1]: expected an integer");
    expect_error("{\"model\": {\"hidden\": [1,2,3,4,5,6,7,8,9]}}",
                 "model.hidden: expected at most 8");
    expect_error("{\"schedule\": {\"decay_at\": [0.75, 0.5]}}",
                 "schedule.decay_at[1]: expected increasing");
    expect_error("{\"schedule\": {\"decay_at\": [1.5]}}", "schedule.decay_at[0]");
    expect_error("{\"data\": 3}", "data: expected an object; got an integer");
    expect_error("{\"workers\": 1, \"topology\": {\"kind\": \"ring\"}}", "ring needs workers >= 2");
    expect_error("{\"name\": \"\"}", "name: expected a non-empty string");
    expect_error("[1, 2]", "expected a JSON object at the top");
    expect_error("{\"workers\": 4,}", "t.json:1:");
    expect_error("{\"workers\": 4, \"workers\": 5}", "invalid JSON");
    expect_error("{\"trace\": {\"measure_xi\": 1}}", "trace.measure_xi: expected true or false");
    expect_error("{\"workers\": 64, \"data\": {\"train_subset\": 100}}", "data.train_subset");
    return check_exit();
}
