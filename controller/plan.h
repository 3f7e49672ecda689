// The pure diff between the rule sets the API server has and the files in
// the rules dir (STYLE.md rule 9: source -> plan -> apply). Given the same
// inputs it returns the same plan, so every reconcile is idempotent.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace controller {

struct FileWrite {
  std::string fileName;
  std::string content;
};

struct Plan {
  std::vector<FileWrite> writes;     // new or changed files, by name
  std::vector<std::string> deletes;  // owned files no object wants, by name

  bool empty() const noexcept { return writes.empty() && deletes.empty(); }
};

// `desired`: file name -> content for every object; `current`: file name ->
// content of the files on disk. Files in `current` that are not owned
// (isOwnedFileName) are never deleted; a desired name that is not owned is
// a caller bug and is skipped.
Plan plan(const std::map<std::string, std::string>& desired,
          const std::map<std::string, std::string>& current);

}  // namespace controller
