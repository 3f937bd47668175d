// tests/apps/ledger_v2/ledger_v2_main.cc — hmdb-ledger-v2, the ledger at schema version 2,
// for the schema system tests (tests/system/schema_test.py). With HMDB_LEDGER_V2=bad-migration
// in its environment it runs a version 2 with a planted bug instead: migrating a version-1
// snapshot adds one cent to the balance of the account "alice", so a node upgraded in place
// holds that one account differently from its peers, which `hmdb cluster verify` must name
// (tests/system/verify_test.py). Never set outside that test.
#include <cstdlib>
#include <string_view>

#include "hmdb/server.h"
#include "ledger_v2/ledger_v2.h"

namespace {
struct LedgerV2BadMigration : hmdb::ledger_v2::LedgerV2 {
  static bool load(State& s, hmdb::Decoder& in, uint32_t version) {
    if (!LedgerV2::load(s, in, version)) return false;
    if (version == 1)
      if (auto it = s.accounts.find("alice"); it != s.accounts.end()) it->second.balance += 1;
    return true;
  }
};
}  // namespace

int main(int argc, char** argv) {
  const char* planted = std::getenv("HMDB_LEDGER_V2");
  if (planted && std::string_view(planted) == "bad-migration") return hmdb::run<LedgerV2BadMigration>(argc, argv);
  return hmdb::run<hmdb::ledger_v2::LedgerV2>(argc, argv);
}
