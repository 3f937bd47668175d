// tests/apps/ledger_v3/ledger_v3_main.cc — hmdb-ledger-v3, the ledger at schema version 3
// (two-phase transfers), for the upgrade system tests (v1 -> v2 -> v3).
#include "hmdb/server.h"
#include "ledger_v3/ledger_v3.h"

int main(int argc, char** argv) { return hmdb::run<hmdb::ledger_v3::LedgerV3>(argc, argv); }
