// tools/bench_main.cc — the standalone `hmdb-bench` executable: the same load generator as
// `hmdb bench`, usable without building the whole server.
#include "tools/bench.h"

int main(int argc, char** argv) { return hmdb::tools::bench_main(argc, argv); }
