#include "common/command_line.h"

#include <string_view>

namespace common {
namespace {

// `--name=` with nothing after the first '=': a long option given an empty
// value. `--name=a=` and `-x=` are left alone (they carry a value, or are not
// long options).
bool isEmptyLongAssignment(std::string_view word) {
  if (word.size() < 4 || !word.starts_with("--") || !word.ends_with('=')) return false;
  return word.find('=') == word.size() - 1;
}

}  // namespace

CommandLine::CommandLine(int argc, char** argv) {
  words_.reserve(static_cast<size_t>(argc) * 2);
  bool optionsEnded = false;
  for (int i = 0; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (i > 0 && !optionsEnded && isEmptyLongAssignment(word)) {
      words_.emplace_back(word.substr(0, word.size() - 1));
      words_.emplace_back();
      continue;
    }
    if (word == "--") optionsEnded = true;
    words_.emplace_back(word);
  }
  pointers_.reserve(words_.size() + 1);
  for (std::string& word : words_) pointers_.push_back(word.data());
  pointers_.push_back(nullptr);
}

}  // namespace common
