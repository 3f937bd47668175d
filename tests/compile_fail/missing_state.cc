// expect: hmdb app: missing its state
#include "good_app.h"

struct App {
  static constexpr std::string_view kName = "app";
  static constexpr uint32_t kSchemaVersion = 1;
  static void define(hmdb::Commands<good::GoodApp::State>&) {}
  static void save(const good::GoodApp::State&, hmdb::Encoder&) {}
  static bool load(good::GoodApp::State&, hmdb::Decoder&, uint32_t) { return true; }
};
template class hmdb::AppHost<App>;
