// tests/server/harness.h — runs a real server process on 127.0.0.1 and talks RESP to it.
//
// ServerProcess starts the binary with --port 0 and learns the port from its "listening on"
// log line (the log goes to a file in the test's directory). RespClient is a blocking client
// with a receive timeout, so a server that never answers fails the test instead of hanging.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace hmdb::test {

// How long a server may take to start, or to exit after SIGTERM, in these small tests.
inline constexpr int kStartTimeoutMs = 20000;
inline constexpr int kExitTimeoutMs = 20000;
// How long a client waits for one reply.
inline constexpr int kReplyTimeoutMs = 20000;
// How often a waiting test polls a file or a process state.
inline constexpr int kPollMs = 5;

struct RespValue {
  char type = 0;  // '+', '-', ':', '$', '*'; '$'/'*' with null = true for nil
  bool null = false;
  std::string str;
  int64_t integer = 0;
  std::vector<RespValue> elements;
  bool is_error() const { return type == '-'; }
  bool operator==(const std::string& s) const { return (type == '+' || type == '$' || type == '-') && str == s; }
};

class RespClient {
 public:
  explicit RespClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
      throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
    timeval tv{kReplyTimeoutMs / 1000, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int yes = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  }
  ~RespClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RespClient(const RespClient&) = delete;
  RespClient& operator=(const RespClient&) = delete;

  static std::string encode(const std::vector<std::string>& argv) {
    std::string s = "*" + std::to_string(argv.size()) + "\r\n";
    for (const auto& a : argv) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return s;
  }
  // Sends raw bytes; false if the server closed the connection.
  bool send_raw(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  void send(const std::vector<std::string>& argv) { send_raw(encode(argv)); }
  RespValue call(const std::vector<std::string>& argv) {
    send(argv);
    return read();
  }
  // Reads one reply; throws on timeout or a closed connection.
  RespValue read() {
    RespValue v;
    std::string line = read_line();
    v.type = line.at(0);
    std::string rest = line.substr(1);
    switch (v.type) {
      case '+':
      case '-':
        v.str = rest;
        break;
      case ':':
        v.integer = std::stoll(rest);
        break;
      case '$': {
        int64_t n = std::stoll(rest);
        if (n < 0) {
          v.null = true;
          break;
        }
        v.str = read_exact(static_cast<size_t>(n) + 2).substr(0, static_cast<size_t>(n));
        break;
      }
      case '*': {
        int64_t n = std::stoll(rest);
        if (n < 0) {
          v.null = true;
          break;
        }
        for (int64_t i = 0; i < n; i++) v.elements.push_back(read());
        break;
      }
      default:
        throw std::runtime_error("bad reply type: " + line);
    }
    return v;
  }
  // True if the server closed the connection (EOF) with no more bytes pending.
  bool closed_by_server() {
    if (!buf_.empty()) return false;
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    if (n == 1) {
      buf_.push_back(c);
      return false;
    }
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }
  int fd() const { return fd_; }

 private:
  void fill() {
    char tmp[65536];
    while (true) {
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) throw std::runtime_error("connection closed by the server");
      if (n < 0) throw std::runtime_error(std::string("recv: ") + std::strerror(errno));
      buf_.append(tmp, static_cast<size_t>(n));
      return;
    }
  }
  std::string read_line() {
    size_t p;
    while ((p = buf_.find("\r\n")) == std::string::npos) fill();
    std::string line = buf_.substr(0, p);
    buf_.erase(0, p + 2);
    return line;
  }
  std::string read_exact(size_t n) {
    while (buf_.size() < n) fill();
    std::string s = buf_.substr(0, n);
    buf_.erase(0, n);
    return s;
  }
  int fd_ = -1;
  std::string buf_;
};

// A fresh directory under the test's temp dir.
inline std::string make_test_dir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(base ? base : "/tmp") + "/hmdb-server-test-" + name + "-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

class ServerProcess {
 public:
  ServerProcess(std::string binary, std::string dir) : binary_(std::move(binary)), dir_(std::move(dir)) {}
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  std::string data_dir() const { return dir_ + "/data"; }
  std::string log_path() const { return dir_ + "/server-" + std::to_string(runs_) + ".log"; }

  // Starts `binary serve --port 0 --dir <dir>/data <extra>` and waits for "listening on".
  void start(const std::vector<std::string>& extra = {}) {
    runs_++;
    std::vector<std::string> args = {binary_, "serve", "--port", "0", "--dir", data_dir()};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string log = log_path();
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 2);
      ::dup2(fd, 1);
      std::vector<char*> av;
      for (auto& a : args) av.push_back(a.data());
      av.push_back(nullptr);
      ::execv(av[0], av.data());
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
    while (std::chrono::steady_clock::now() < deadline) {
      std::string text = read_log();
      size_t p = text.find("listening on 127.0.0.1:");
      if (p != std::string::npos && text.find(',', p) != std::string::npos) {
        port_ = static_cast<uint16_t>(std::stoi(text.substr(p + std::strlen("listening on 127.0.0.1:"))));
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_status_ = status;
        throw std::runtime_error("server exited during startup:\n" + text);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
    }
    throw std::runtime_error("server did not start in time:\n" + read_log());
  }

  // Runs the binary to completion (for startup failures); returns its exit code.
  int run_to_exit(const std::vector<std::string>& extra = {}) {
    runs_++;
    std::vector<std::string> args = {binary_, "serve", "--port", "0", "--dir", data_dir()};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_command(args, log_path());
  }

  static int run_command(std::vector<std::string> args, const std::string& log) {
    pid_t pid = ::fork();
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 2);
      ::dup2(fd, 1);
      std::vector<char*> av;
      for (auto& a : args) av.push_back(a.data());
      av.push_back(nullptr);
      ::execv(av[0], av.data());
      _exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // Sends sig (SIGSTOP, SIGCONT); after SIGSTOP, returns once the server has stopped.
  void signal(int sig) {
    if (pid_ <= 0) throw std::runtime_error("not running");
    ::kill(pid_, sig);
    int status = 0;
    if (sig == SIGSTOP && (::waitpid(pid_, &status, WUNTRACED) != pid_ || !WIFSTOPPED(status)))
      throw std::runtime_error("server did not stop");
  }
  // Sends sig and waits for the exit; returns the exit code (128 + signal if killed).
  int stop(int sig = SIGTERM) {
    if (pid_ <= 0) throw std::runtime_error("not running");
    ::kill(pid_, sig);
    return wait_exit();
  }
  int wait_exit() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kExitTimeoutMs);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("server did not exit:\n" + read_log());
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  std::string read_log() const {
    std::ifstream in(log_path());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& binary() const { return binary_; }

 private:
  std::string binary_;
  std::string dir_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  int runs_ = 0;
  int exit_status_ = 0;
};

}  // namespace hmdb::test
