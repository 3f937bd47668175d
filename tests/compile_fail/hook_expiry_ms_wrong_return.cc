// expect: the optional hook expiry_ms must be `static std::optional<uint64_t> expiry_ms(const State& s, std::string_view key);`
#include "good_app.h"

struct App : good::GoodApp {
  static uint64_t expiry_ms(const State&, std::string_view) { return 0; }  // 0 for "none" is not nothing
};
template class hmdb::AppHost<App>;
