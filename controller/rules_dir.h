// Applies a Plan to the rules dir egressd watches. Writes are atomic: a
// hidden ".tmp-*" file in the same dir is written, flushed to disk (fsync
// for one file, one syncfs for a plan with several) and renamed over the
// target, then the dir is fsynced, so egressd never reads half a file (and
// ignores the hidden temp file, see policy::isManifestFileName).
//
// Only files matching isOwnedFileName() are read, written or removed.
// Not thread-safe: one RulesDir per controller.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "controller/plan.h"

namespace controller {

class RulesDir {
 public:
  explicit RulesDir(std::string path) : path_(std::move(path)) {}

  // The owned files on disk and their contents; problems appended to
  // `errors`. Also removes our leftover ".tmp-*" files (a crash mid-write).
  std::map<std::string, std::string> scan(std::vector<std::string>& errors) const;

  // Performs the plan; returns one message per failed step. A failed write
  // leaves the old file in place.
  std::vector<std::string> apply(const Plan& plan) const;

  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

}  // namespace controller
