// tests/server/tiny_server_main.cc — the tiny test app as a full server binary (hmdb_add_app),
// started as a real process by server_test.
#include "hmdb/server.h"
#include "tiny_app.h"

int main(int argc, char** argv) { return hmdb::run<hmdb::test::TinyKv>(argc, argv); }
