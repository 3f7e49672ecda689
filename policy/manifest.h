// EgressRuleSet manifests: YAML or JSON, several documents per file,
// exactly what `kubectl apply -f` takes (including `kind: List`).
//
// Nothing is thrown past the loader: every YAML error, wrong kind or bad
// target becomes a Problem naming the file, the document and the target.
//
// One code path for everybody: `egressctl lint`, `egressd --check-config`,
// egressd's live reloads and egress-controller's status all go through
// RulesLoader (or loadManifest for one object), so they say the same thing
// about the same input.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <set>
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
  // Rule sets in force: every document that reads as a rule set, with its
  // valid targets; refused targets are listed on each (RuleSet::refused).
  std::vector<RuleSet> valid;
  // Documents meant as rule sets that cannot be read as one (broken YAML,
  // near-miss kind, wrong apiVersion, bad metadata or spec): refused as a
  // whole. ns/name are set when the document got that far, else empty.
  std::vector<RuleSet> rejected;
  std::vector<Problem> problems;  // errors and warnings, in file order
  size_t documents = 0;           // non-empty documents read (0: an empty file)
  bool failedAsWhole = false;     // nothing of the file could be read (size, I/O, JSON syntax)

  bool hasErrors() const;
};

// Parses manifest text. `sourceName` names the input in problems. A YAML
// syntax error costs only the document it is in: the others still load.
ManifestLoad loadManifest(std::string_view content, const std::string& sourceName,
                          const PublicSuffixList& suffixes, bool system = false);

// Reads and parses one file (size bounded by kMaxManifestBytes).
ManifestLoad loadManifestFile(const std::string& path, const PublicSuffixList& suffixes, bool system = false);

// "1 of 3 targets will not be in force: target[1] \"*.github.io:443\"; the
// other 2 will". Empty when nothing was refused.
std::string refusedTargetsSummary(const RuleSet& ruleSet);

bool isManifestFileName(std::string_view fileName);

struct DirectoryListing {
  std::vector<std::string> files;  // manifest files (isManifestFileName, regular, links followed), sorted
  std::vector<std::string>
      skipped;  // other entries (wrong extension, subdirectories), sorted; hidden ones not
};

// The manifest files of `dir`; a warning in `problems` when `dir` does not
// exist (yet) or cannot be read, an error when it is not a directory.
DirectoryListing listRulesDirectory(const std::string& dir, std::vector<Problem>& problems);
std::vector<std::string> listManifestFiles(const std::string& dir, std::vector<Problem>& problems);

// Warns when two sources define the same namespace/name (both apply).
class RuleSetIds {
 public:
  void note(const RuleSet& ruleSet, const std::string& file, std::vector<Problem>& problems);

 private:
  std::map<std::string, std::string> firstSource_;  // id → source
};

// What one pass over rule files found.
struct RulesLoad {
  std::vector<RuleSet> ruleSets;  // in force, in directory then file order
  std::vector<Problem> problems;  // errors and warnings of this pass
  // file → its rule sets in force: the next pass's last good versions.
  std::map<std::string, std::vector<RuleSet>> byFile;
  std::vector<std::string> keptLastGood;  // files (or documents) whose last good version stays in force
  std::vector<std::string> deferred;      // files being written: last good version kept, not read
  std::vector<std::string> skipped;       // directory entries that are not manifest files
  std::vector<std::string> rejected;      // documents refused as a whole: "ns/name", or "file#N" when unnamed
  size_t files = 0;
  size_t documents = 0;
  size_t rejectedRuleSets = 0;  // documents refused as a whole
  size_t refusedTargets = 0;    // targets not in force in rule sets that are

  size_t errors() const;
  size_t warnings() const;
  size_t targetsInForce() const;
};

// One pass over rule files, directories or text. With `lastGood` (the
// previous pass's RulesLoad::byFile), a file that cannot be read as a whole
// keeps its last good rule sets, and so does a document of it that cannot
// be read as a rule set; without it (lint, --check-config) nothing is kept.
// Files for which `beingWritten` says true are not read: their last good
// version stays (a half-written file never counts).
//
// Not thread-safe; one per pass.
class RulesLoader {
 public:
  explicit RulesLoader(const PublicSuffixList& suffixes,
                       const std::map<std::string, std::vector<RuleSet>>* lastGood = nullptr,
                       std::function<bool(const std::string&)> beingWritten = {});

  void addDirectory(const std::string& dir, bool system = false);
  void addFile(const std::string& path, bool system = false);
  void addContent(std::string_view content, const std::string& name, bool system = false);
  RulesLoad finish() &&;

 private:
  void add(const std::string& file, ManifestLoad load);
  void keepDeferred(const std::string& file);

  const PublicSuffixList& suffixes_;
  const std::map<std::string, std::vector<RuleSet>>* lastGood_;
  std::function<bool(const std::string&)> beingWritten_;
  RuleSetIds ids_;
  RulesLoad out_;
};

// Loads every *.yaml, *.yml and *.json file of each directory (sorted by
// name; hidden files and others skipped). A missing directory is a warning.
RulesLoad loadRulesDirectories(const std::vector<std::string>& dirs, const PublicSuffixList& suffixes,
                               const std::vector<std::string>& systemDirs = {});

}  // namespace policy
