// expect: hmdb app: missing `static constexpr std::string_view kName
#include "good_app.h"

struct App {
  static constexpr uint32_t kSchemaVersion = 1;
  using State = good::GoodApp::State;
  static void define(hmdb::Commands<State>&) {}
  static void save(const State&, hmdb::Encoder&) {}
  static bool load(State&, hmdb::Decoder&, uint32_t) { return true; }
};
template class hmdb::AppHost<App>;
