/* bench_model.c: model throughput figures (filled in by the training-core work). */
int main(void) {
    return 0;
}
