#include "controller/rules_dir.h"
#include "common/errno_text.h"
#include "common/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "controller/rule_set_object.h"
#include "policy/manifest.h"

namespace controller {

namespace {

constexpr std::string_view kTempPrefix = ".tmp-egress-controller-";

std::string errnoText(const std::string& what) {
  return what + ": " + common::errnoText(errno);
}

bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string randomSuffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  for (int i = 0; i < 10; ++i) out.push_back(kChars[rng() % (sizeof(kChars) - 1)]);
  return out;
}

}  // namespace

std::map<std::string, std::string> RulesDir::scan(std::vector<std::string>& errors) const {
  std::map<std::string, std::string> out;
  std::error_code ec;
  std::filesystem::directory_iterator it(path_, ec);
  if (ec) {
    errors.push_back(path_ + ": " + ec.message());
    return out;
  }
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kTempPrefix, 0) == 0) {
      std::error_code removeError;
      std::filesystem::remove(entry.path(), removeError);
      continue;
    }
    if (!isOwnedFileName(name)) continue;
    std::error_code sizeError;
    const auto size = std::filesystem::file_size(entry.path(), sizeError);
    if (sizeError || size > policy::kMaxManifestBytes) {
      // Unknown content: an empty string never equals a manifest, so the
      // plan rewrites (or deletes) the file.
      out.emplace(name, std::string());
      continue;
    }
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream content;
    content << in.rdbuf();
    out.emplace(name, content.str());
  }
  return out;
}

std::vector<std::string> RulesDir::apply(const Plan& plan) const {
  std::vector<std::string> errors;
  bool changed = false;
  const common::UniqueFd dir(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  struct Staged {
    std::string temp;
    std::string target;
  };
  std::vector<Staged> staged;
  const bool single = plan.writes.size() == 1;
  // 1. Every new content into a hidden temp file.
  for (const auto& write : plan.writes) {
    Staged s{path_ + "/" + std::string(kTempPrefix) + randomSuffix(), path_ + "/" + write.fileName};
    common::UniqueFd fd(::open(s.temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (fd.get() < 0) {
      errors.push_back(errnoText("create " + s.temp));
      continue;
    }
    // One file: fsync it. Several: one syncfs below for all of them.
    if (!writeAll(fd.get(), write.content) || (single && ::fsync(fd.get()) != 0) ||
        ::close(fd.release()) != 0) {
      errors.push_back(errnoText("write " + s.temp));
      ::unlink(s.temp.c_str());
      continue;
    }
    staged.push_back(std::move(s));
  }
  // 2. Data on disk before any rename: after a crash a name points to the
  // whole new content or to the old file, never to an empty one. syncfs is
  // one journal commit for the batch where fsync per file costs one each
  // (5-15 ms apiece on a busy disk: 1,000 new rule sets would take seconds).
  if (staged.size() > 1 && (dir.get() < 0 || ::syncfs(dir.get()) != 0)) {
    errors.push_back(errnoText("syncfs " + path_));
    for (const auto& s : staged) ::unlink(s.temp.c_str());
    staged.clear();
  }
  // 3. The renames: egressd sees the old or the new file, never half of one.
  for (const auto& s : staged) {
    if (::rename(s.temp.c_str(), s.target.c_str()) != 0) {
      errors.push_back(errnoText("rename to " + s.target));
      ::unlink(s.temp.c_str());
      continue;
    }
    changed = true;
  }
  for (const auto& name : plan.deletes) {
    if (!isOwnedFileName(name)) continue;  // defence in depth: never touch others' files
    const std::string target = path_ + "/" + name;
    if (::unlink(target.c_str()) != 0 && errno != ENOENT) {
      errors.push_back(errnoText("remove " + target));
      continue;
    }
    changed = true;
  }
  // 4. Persist the renames and unlinks themselves.
  if (changed && dir.get() >= 0) ::fsync(dir.get());
  return errors;
}

}  // namespace controller
