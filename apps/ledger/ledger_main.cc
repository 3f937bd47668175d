// apps/ledger/ledger_main.cc — the `hmdb-ledger` binary: the engine serving the ledger app.
#include "hmdb/server.h"
#include "ledger/ledger.h"

int main(int argc, char** argv) { return hmdb::run<hmdb::ledger::Ledger>(argc, argv); }
