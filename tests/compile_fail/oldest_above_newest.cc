// expect: hmdb app: the optional `static constexpr uint32_t kOldestSchemaVersion` must be a constant from 1 to kSchemaVersion
#include "good_app.h"

struct App : good::GoodApp {
  static constexpr uint32_t kOldestSchemaVersion = 2;  // newer than kSchemaVersion (1)
};
template class hmdb::AppHost<App>;
