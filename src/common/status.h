// common/status.h — errors as values. Corruption and I/O errors are different kinds because
// callers react differently: corruption means "the data is wrong, stop and tell the
// operator where", an I/O error means "the device failed" (and for fsync: stop the node).
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace hmdb {

class Status {
 public:
  enum class Code : unsigned char { kOk, kNotFound, kCorruption, kIOError, kInvalidArgument, kNotSupported, kBusy };

  Status() = default;
  static Status ok() { return {}; }
  static Status not_found(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status io_error(std::string m) { return {Code::kIOError, std::move(m)}; }
  static Status invalid_argument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status not_supported(std::string m) { return {Code::kNotSupported, std::move(m)}; }
  static Status busy(std::string m) { return {Code::kBusy, std::move(m)}; }

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  bool is_not_found() const { return code_ == Code::kNotFound; }
  bool is_corruption() const { return code_ == Code::kCorruption; }
  bool is_io_error() const { return code_ == Code::kIOError; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const {
    static constexpr std::string_view names[] = {"OK", "not found", "corruption", "I/O error",
                                                 "invalid argument", "not supported", "busy"};
    std::string s(names[static_cast<int>(code_)]);
    if (!message_.empty()) s += ": " + message_;
    return s;
  }

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace hmdb
