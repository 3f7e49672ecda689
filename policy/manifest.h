// EgressRuleSet manifests: YAML or JSON, several documents per file,
// exactly what `kubectl apply -f` takes (including `kind: List`).
//
// Nothing is thrown past the loader: every YAML error, wrong kind or bad
// target becomes a Problem naming the file, the document and the target.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "policy/public_suffix.h"
#include "policy/rule_set.h"

namespace policy {

inline constexpr std::string_view kApiVersion = "zalando.org/v1";
inline constexpr std::string_view kKind = "EgressRuleSet";
// Larger than any object etcd accepts (1.5 MiB), small enough to bound work.
inline constexpr size_t kMaxManifestBytes = 2 * 1024 * 1024;
// Bounds the number of rule sets (and so of work) one file can create.
inline constexpr size_t kMaxDocumentsPerFile = 10'000;

struct ManifestLoad {
  std::vector<RuleSet> valid;     // rule sets without errors
  std::vector<RuleSet> rejected;  // rule sets refused as a whole (see problems)
  std::vector<Problem> problems;  // errors and warnings, in file order

  bool hasErrors() const;
};

// Parses manifest text. `sourceName` names the input in problems.
ManifestLoad loadManifest(std::string_view content, const std::string& sourceName,
                          const PublicSuffixList& suffixes, bool system = false);

// Reads and parses one file (size bounded by kMaxManifestBytes).
ManifestLoad loadManifestFile(const std::string& path, const PublicSuffixList& suffixes, bool system = false);

// Loads every *.yaml, *.yml and *.json file of each directory (sorted by
// name; hidden files and others skipped). A missing directory is a warning.
ManifestLoad loadRulesDirectories(const std::vector<std::string>& dirs, const PublicSuffixList& suffixes,
                                  const std::vector<std::string>& systemDirs = {});

bool isManifestFileName(std::string_view fileName);

// The manifest files of `dir` (isManifestFileName, regular files, links
// followed), sorted by name; a warning in `problems` when `dir` cannot be
// read. The one directory scan of lint, --check-config and egressd.
std::vector<std::string> listManifestFiles(const std::string& dir, std::vector<Problem>& problems);

// Warns when two sources define the same namespace/name (both apply).
class RuleSetIds {
 public:
  void note(const RuleSet& ruleSet, const std::string& file, std::vector<Problem>& problems);

 private:
  std::map<std::string, std::string> firstSource_;  // id → source
};

}  // namespace policy
