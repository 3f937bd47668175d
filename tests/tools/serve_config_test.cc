// tests/tools/serve_config_test.cc — the config file's lines (tools/serve_config.h), every
// error path, and the default user's password check (server/auth.h). Which keys exist and
// what values they take is checked with the real binary (tests/system/auth_test.py).
#include "tools/serve_config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "server/auth.h"

namespace hmdb::tools {
namespace {

std::vector<ConfigEntry> parse_ok(std::string_view text) {
  std::vector<ConfigEntry> out;
  Status s = parse_config_text(text, "f.conf", &out);
  EXPECT_TRUE(s) << s.to_string();
  return out;
}

std::string parse_error(std::string_view text) {
  std::vector<ConfigEntry> out;
  Status s = parse_config_text(text, "f.conf", &out);
  EXPECT_FALSE(s) << "accepted: " << text;
  return s.message();
}

TEST(ServeConfig, KeysValuesCommentsAndBlanks) {
  const auto e = parse_ok("# a comment\n\n   \t\nport 7380\n  bind\t127.0.0.2  \r\n  # indented comment\njoin yes");
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].key, "port");
  EXPECT_EQ(e[0].value, "7380");
  EXPECT_EQ(e[0].line, 4);
  EXPECT_EQ(e[1].key, "bind");
  EXPECT_EQ(e[1].value, "127.0.0.2");  // trailing blanks and CR dropped
  EXPECT_EQ(e[1].line, 5);
  EXPECT_EQ(e[2].value, "yes");  // no newline at the end
  EXPECT_EQ(e[2].line, 7);
}

TEST(ServeConfig, ValuesKeepHashesAndInnerSpaces) {
  const auto e = parse_ok("requirepass pa#ss word  # not a comment\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].value, "pa#ss word  # not a comment");
}

TEST(ServeConfig, QuotedValues) {
  const auto e = parse_ok("a \"  spaced  \"\nb \"\"\nc \"q\\\"uote\\\\\"\nd \"back\\slash\"\n");
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[0].value, "  spaced  ");
  EXPECT_EQ(e[1].value, "");
  EXPECT_EQ(e[2].value, "q\"uote\\");
  EXPECT_EQ(e[3].value, "back\\slash");  // a backslash before anything else is itself
}

TEST(ServeConfig, Errors) {
  EXPECT_EQ(parse_error("port\n"), "f.conf:1: 'port' has no value (write \"\" for an empty one)");
  EXPECT_EQ(parse_error("\nport   \t\n"), "f.conf:2: 'port' has no value (write \"\" for an empty one)");
  EXPECT_EQ(parse_error("a \"open\n"), "f.conf:1: 'a': unbalanced quotes in the value");
  EXPECT_EQ(parse_error("a \"ends with escape\\\"\n"), "f.conf:1: 'a': unbalanced quotes in the value");
  EXPECT_EQ(parse_error("a \"x\" y\n"), "f.conf:1: 'a': characters after the closing quote");
  EXPECT_EQ(parse_error("# c\nport 1\n\nport 2\n"), "f.conf:4: 'port' is already set at line 2");
  EXPECT_EQ(parse_error("po\x01rt 1\n"), "f.conf:1: a key is a flag name: letters, digits and dashes");
}

TEST(ServeConfig, ReadFile) {
  std::vector<ConfigEntry> out;
  Status s = read_config_file("/nonexistent/hmdb.conf", &out);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("cannot read the config file /nonexistent/hmdb.conf"), std::string::npos);

  const std::string path = ::testing::TempDir() + "serve_config_test.conf";
  std::ofstream(path) << "port 7000\n";
  ASSERT_TRUE(read_config_file(path, &out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].value, "7000");

  std::ofstream(path, std::ios::trunc) << std::string(kConfigFileBytesMax + 1, '#');
  s = read_config_file(path, &out);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("not a config file"), std::string::npos);
  std::remove(path.c_str());
}

TEST(DefaultUser, NoPassword) {
  const server::DefaultUser u;
  EXPECT_TRUE(u.default_nopass());
  EXPECT_TRUE(u.check("default", "anything"));
  EXPECT_FALSE(u.check("bob", "anything"));
  EXPECT_TRUE(server::DefaultUser("").default_nopass());
}

TEST(DefaultUser, Password) {
  const server::DefaultUser u("s3cret");
  EXPECT_FALSE(u.default_nopass());
  EXPECT_TRUE(u.check("default", "s3cret"));
  EXPECT_FALSE(u.check("default", "s3cre"));
  EXPECT_FALSE(u.check("default", "s3cret "));
  EXPECT_FALSE(u.check("default", ""));
  EXPECT_FALSE(u.check("DEFAULT", "s3cret"));  // user names are case-sensitive, as in Redis
  EXPECT_FALSE(u.check("bob", "s3cret"));
}

}  // namespace
}  // namespace hmdb::tools
