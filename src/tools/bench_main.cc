// tools/bench_main.cc — the `hmdb-bench` executable: the load generator (tools/bench.h), a
// program of its own so that no server binary carries it.
#include "tools/bench.h"

int main(int argc, char** argv) { return hmdb::tools::bench_main(argc, argv); }
