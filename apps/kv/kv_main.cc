// apps/kv/kv_main.cc — the `hmdb` binary: the engine serving the kv application.
#include "hmdb/server.h"
#include "kv/kv.h"

int main(int argc, char** argv) { return hmdb::run<hmdb::kv::Kv>(argc, argv); }
