#include "cli/control_client.h"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <variant>

#include "common/errno_text.h"
#include "config/load.h"

namespace cli {

namespace {

std::atomic<bool> gInterrupted{false};

extern "C" void onInterrupt(int) {
  gInterrupted.store(true);
}

// Who may connect: the socket's mode and owner, as `ls -l` would show them.
std::string socketAccess(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "run egressctl as the user egressd runs as (root)";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  std::array<char, 4096> scratch{};
  passwd userEntry{};
  passwd* user = nullptr;
  ::getpwuid_r(st.st_uid, &userEntry, scratch.data(), scratch.size(), &user);
  const std::string owner = user != nullptr ? user->pw_name : std::to_string(st.st_uid);
  group groupEntry{};
  group* grp = nullptr;
  ::getgrgid_r(st.st_gid, &groupEntry, scratch.data(), scratch.size(), &grp);
  const std::string groupName = grp != nullptr ? grp->gr_name : std::to_string(st.st_gid);
  std::string hint = "the socket is mode " + std::string(mode) + ", owner " + owner + ":" + groupName +
                     "; run egressctl as " + owner;
  if ((st.st_mode & 0060) == 0060) {
    hint += " or as a member of group " + groupName;
  } else {
    hint += " (control.socket_mode = \"0660\" lets its group in)";
  }
  return hint;
}

// What is at `path` when it is not a socket, for the error message.
std::string notASocket(const std::string& path, const struct stat& st) {
  const char* what = S_ISREG(st.st_mode)   ? "a regular file"
                     : S_ISDIR(st.st_mode) ? "a directory"
                                           : "not a socket";
  std::string message = path + " is " + what +
                        ", not egressd's control socket (control.socket in egressd.toml, "
                        "default " +
                        std::string(kDefaultSocket) + ")";
  const bool toml = path.size() > 5 && path.compare(path.size() - 5, 5, ".toml") == 0;
  if (toml) message += "; to take the socket from this config file, use --config " + path;
  return message;
}

std::string connectHint(int error, const std::string& path) {
  switch (error) {
    case ENOENT:
    case ECONNREFUSED:
      return "is egressd running, with control.socket at this path? see --socket";
    case EACCES:
    case EPERM:
      return "permission denied: " + socketAccess(path);
    default:
      return "is egressd running? permission denied?";
  }
}

}  // namespace

bool interrupted() noexcept {
  return gInterrupted.load();
}

void installInterruptHandler() {
  struct sigaction action {};
  action.sa_handler = &onInterrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: poll() returns EINTR at once
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool chooseSocket(const std::string* socketFlag, const std::string& configFile, const char* environment,
                  std::string& socket, std::string& error) {
  if (socketFlag != nullptr) {
    socket = *socketFlag;
    return true;
  }
  if (!configFile.empty()) {
    const config::ConfigLoad loaded = config::loadConfigFile(configFile);
    if (!loaded.ok()) {
      error = "--config " + configFile + " cannot be used (give --socket instead, or fix it):";
      for (const auto& problem : loaded.problems) error += "\n  " + problem.toString();
      return false;
    }
    socket = loaded.config->control.socket;
    return true;
  }
  if (environment != nullptr && *environment != '\0') {
    socket = environment;
    return true;
  }
  socket = std::string(kDefaultSocket);
  return true;
}

std::unique_ptr<ControlClient> ControlClient::connect(const std::string& path, std::string& error) {
  if (struct stat st{}; ::stat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
    error = "cannot connect to " + notASocket(path, st);
    return nullptr;
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    error = "socket path " + path + " is too long";
    return nullptr;
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = "socket(AF_UNIX): " + common::errnoText(errno);
    return nullptr;
  }
  auto client = std::make_unique<ControlClient>(fd, path);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    const int e = errno;
    error = "cannot connect to " + path + ": " + common::errnoText(e) + " (" + connectHint(e, path) + ")";
    return nullptr;
  }
  std::string line;
  const ReadStatus status = client->readLine(line, error, std::chrono::seconds(5));
  if (status != ReadStatus::Line) {
    if (status == ReadStatus::Timeout) error = "no greeting from " + path + " within 5 s";
    if (status == ReadStatus::Closed) error = path + " closed the connection without a greeting";
    return nullptr;
  }
  const auto greeting = control::parseGreeting(line);
  if (const auto* message = std::get_if<std::string>(&greeting)) {
    error = path + ": " + *message;
    return nullptr;
  }
  const int protocol = std::get<int>(greeting);
  if (protocol != control::kProtocolVersion) {
    error = "egressd at " + path + " speaks control protocol " + std::to_string(protocol) +
            ", this egressctl speaks " + std::to_string(control::kProtocolVersion) +
            ": use the egressctl of the same release";
    return nullptr;
  }
  auto doc = nlohmann::json::parse(line, nullptr, false);
  if (doc.is_object() && doc["egressd"].is_string())
    client->daemonVersion_ = doc["egressd"].get<std::string>();
  return client;
}

ControlClient::~ControlClient() {
  ::close(fd_);
}

bool ControlClient::send(const control::Request& request, std::string& error) {
  std::string line = control::requestLine(request);
  line += '\n';
  size_t sent = 0;
  while (sent < line.size()) {
    const ssize_t n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = "writing to " + path_ + ": " + common::errnoText(errno);
      return false;
    }
    sent += static_cast<size_t>(n);
  }
  return true;
}

ControlClient::ReadStatus ControlClient::readLine(std::string& line, std::string& error,
                                                  std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const size_t newline = buffer_.find('\n', start_);
    if (newline != std::string::npos) {
      line.assign(buffer_, start_, newline - start_);
      start_ = newline + 1;
      if (start_ > 65536 && start_ * 2 > buffer_.size()) {
        buffer_.erase(0, start_);
        start_ = 0;
      }
      return ReadStatus::Line;
    }
    if (buffer_.size() - start_ > control::kMaxResponseLine) {
      error = path_ + " sent a line longer than " + std::to_string(control::kMaxResponseLine) + " bytes";
      return ReadStatus::Error;
    }
    if (interrupted()) return ReadStatus::Interrupted;
    int wait = -1;
    if (timeout.count() >= 0) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return ReadStatus::Timeout;
      wait = static_cast<int>(left.count());
    }
    if (beforeWait_) beforeWait_();
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, wait);
    if (ready < 0) {
      if (errno == EINTR) continue;  // interrupted() is checked above
      error = "poll: " + common::errnoText(errno);
      return ReadStatus::Error;
    }
    if (ready == 0) continue;  // the deadline check above ends it
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      error = "reading from " + path_ + ": " + common::errnoText(errno);
      return ReadStatus::Error;
    }
    if (n == 0) return ReadStatus::Closed;
    if (start_ > 0 && start_ == buffer_.size()) {
      buffer_.clear();
      start_ = 0;
    }
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

std::optional<nlohmann::json> ControlClient::call(const control::Request& request, std::string& error,
                                                  nlohmann::json* response) {
  if (!send(request, error)) return std::nullopt;
  std::string line;
  switch (readLine(line, error)) {
    case ReadStatus::Line:
      break;
    case ReadStatus::Closed:
      error = "egressd closed the connection";
      return std::nullopt;
    case ReadStatus::Interrupted:
      error = "interrupted";
      return std::nullopt;
    default:
      return std::nullopt;
  }
  auto doc = nlohmann::json::parse(line, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    error = "egressd sent a response that is not a JSON object";
    return std::nullopt;
  }
  if (response != nullptr) *response = doc;
  if (doc.value("ok", false) != true) {
    error = doc.contains("error") && doc["error"].is_string() ? doc["error"].get<std::string>()
                                                              : std::string("request failed");
    return std::nullopt;
  }
  return doc;
}

}  // namespace cli
