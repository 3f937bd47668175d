// tests/apps/ledger_v2/ledger_v2_main.cc — hmdb-ledger-v2, the ledger at schema version 2,
// for the schema system tests (tests/system/schema_test.py).
#include "hmdb/server.h"
#include "ledger_v2/ledger_v2.h"

int main(int argc, char** argv) { return hmdb::run<hmdb::ledger_v2::LedgerV2>(argc, argv); }
