// expect: hmdb app: missing `static constexpr uint32_t kSchemaVersion = 1;` (1 or more
#include "good_app.h"

struct App : good::GoodApp {
  static constexpr uint32_t kSchemaVersion = 0;
};
template class hmdb::AppHost<App>;
