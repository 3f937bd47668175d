// tools/app_main.cc — main() of an app binary whose app is named by HMDB_APP (hmdb/server.h):
// the hmdb_main library, which hmdb_add_app links, so that the app's one source file holds
// no main() and its tests can link the same file.
#include "hmdb/server.h"

int main(int argc, char** argv) { return hmdb::run_main(hmdb::registered_app, argc, argv); }
