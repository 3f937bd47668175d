// expect: the optional hook housekeeping must be `static std::optional<std::vector<std::string>> housekeeping(const State& s, uint64_t now_ms);`
#include "good_app.h"

struct App : good::GoodApp {
  static std::optional<std::vector<std::string>> housekeeping(const State&) { return std::nullopt; }
};
template class hmdb::AppHost<App>;
