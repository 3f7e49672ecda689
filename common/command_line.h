#pragma once

#include <string>
#include <vector>

namespace common {

// The program's arguments as CLI11 should see them. CLI11 (2.1) reads
// `--name=` (an empty value after the equals sign) as "take the next
// argument", so `--inject-node-ip-env= --other x` would silently set the
// variable to "--other". Every `--name=` is passed on as `--name ""`, which
// CLI11 reads as the empty value the user wrote.
class CommandLine {
 public:
  CommandLine(int argc, char** argv);

  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;

  int argc() const noexcept { return static_cast<int>(pointers_.size()) - 1; }
  char** argv() noexcept { return pointers_.data(); }

 private:
  std::vector<std::string> words_;
  std::vector<char*> pointers_;  // into words_, null-terminated like argv
};

}  // namespace common
