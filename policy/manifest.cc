#include "policy/manifest.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/strings.h"
#include "policy/yaml_tree.h"

namespace policy {

namespace {

// DNS-1123 subdomain (object names) and label (namespaces), as Kubernetes
// validates them.
bool isDns1123Subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && c != '-' && c != '.') return false;
    if ((i == 0 || i + 1 == s.size()) && !alnum) return false;
  }
  return true;
}

bool isDns1123Label(std::string_view s) {
  return s.size() <= 63 && s.find('.') == std::string_view::npos && isDns1123Subdomain(s);
}

class DocumentContext {
 public:
  DocumentContext(ManifestLoad& load, const std::string& file, int document)
      : load_(load), file_(file), document_(document) {}

  void error(std::string message, std::optional<size_t> index = std::nullopt, std::string target = {}) {
    add(Severity::Error, std::move(message), index, std::move(target));
    ++errors_;
  }
  void warning(std::string message, std::optional<size_t> index = std::nullopt, std::string target = {}) {
    add(Severity::Warning, std::move(message), index, std::move(target));
  }
  void setRuleSet(std::string id) { ruleSet_ = std::move(id); }
  int errors() const { return errors_; }
  int document() const { return document_; }

 private:
  void add(Severity severity, std::string message, std::optional<size_t> index, std::string target) {
    Problem problem;
    problem.severity = severity;
    problem.file = file_;
    problem.document = document_;
    problem.targetIndex = index;
    problem.target = std::move(target);
    problem.ruleSet = ruleSet_;
    problem.message = std::move(message);
    load_.problems.push_back(std::move(problem));
  }

  ManifestLoad& load_;
  const std::string& file_;
  int document_;
  std::string ruleSet_;
  int errors_ = 0;
};

std::string scalarOr(const YamlNode& node, const char* key) {
  const YamlNode* value = node.get(key);
  if (value != nullptr && value->isScalar()) return value->scalar;
  return {};
}

void loadRuleSetDocument(const YamlNode& doc, DocumentContext& ctx, ManifestLoad& load,
                         const std::string& sourceName, const PublicSuffixList& suffixes, bool system) {
  const YamlNode* metadata = doc.get("metadata");
  RuleSet ruleSet;
  ruleSet.system = system;
  ruleSet.source = sourceName + "#" + std::to_string(ctx.document());
  const bool hasMetadata = metadata != nullptr && metadata->isMapping();
  ruleSet.name = hasMetadata ? scalarOr(*metadata, "name") : "";
  ruleSet.ns = hasMetadata ? scalarOr(*metadata, "namespace") : "";
  if (ruleSet.ns.empty()) ruleSet.ns = "default";
  ctx.setRuleSet(ruleSet.id());

  if (!hasMetadata) {
    ctx.error("metadata is missing or not a mapping");
  } else if (ruleSet.name.empty()) {
    ctx.error(metadata->get("generateName") != nullptr
                  ? "metadata.generateName is not supported; set metadata.name"
                  : "metadata.name is missing");
  } else if (!isDns1123Subdomain(ruleSet.name)) {
    ctx.error("metadata.name \"" + ruleSet.name +
              "\" is not a valid name (lower-case letters, digits, '-' and '.', at most 253)");
  }
  if (!isDns1123Label(ruleSet.ns)) {
    ctx.error("metadata.namespace \"" + ruleSet.ns + "\" is not a valid namespace");
  }

  const YamlNode* spec = doc.get("spec");
  if (spec == nullptr || spec->isNull()) {
    ctx.error("spec is missing; expected spec.targets: [\"HOST:PORT\", ...]");
  } else if (!spec->isMapping()) {
    ctx.error("spec must be a mapping with a targets list");
  } else {
    for (const auto& [key, value] : spec->entries) {
      if (key != "targets") ctx.warning("unknown field spec." + key + " is ignored");
    }
    const YamlNode* targets = spec->get("targets");
    if (targets == nullptr || targets->isNull()) {
      ctx.error("spec.targets is missing; expected a list of \"HOST:PORT\" strings");
    } else if (!targets->isSequence()) {
      ctx.error("spec.targets must be a list of \"HOST:PORT\" strings");
    } else {
      if (targets->items.empty()) ctx.warning("spec.targets is empty: this rule set allows nothing");
      std::set<std::string> seen;
      for (size_t index = 0; index < targets->items.size(); ++index) {
        const YamlNode& item = *targets->items[index];
        if (!item.isScalar()) {
          ctx.error("target must be a string \"HOST:PORT\"", index);
          continue;
        }
        const std::string& text = item.scalar;
        TargetParse parsed = parseTarget(text, suffixes);
        if (!parsed.target) {
          ctx.error(parsed.reason(), index, text);
          continue;
        }
        const std::string canonical = parsed.target->canonical();
        if (!seen.insert(canonical).second) {
          ctx.warning("duplicate target (same as an earlier one)", index, text);
          continue;
        }
        if (parsed.target->kind == TargetKind::AnyName) {
          ctx.warning("world access: any host on port " + std::to_string(parsed.target->port) +
                          " is allowed (explicit, but check that this is intended)",
                      index, text);
          // DNS cannot know the port, so the consequence for DNS is its own
          // line: what resolves, and the guards that keep it from being a
          // tunnel (dns/classify.h, dns/tunnel_guard.h).
          ctx.warning(
              "world access makes every name resolvable through egressd's DNS; for names no exact or "
              "wildcard target allows, only A/AAAA queries are answered (other types: "
              "world_non_address_query) and each client gets a budget of distinct names per registrable "
              "domain (dns.tunnel_guard_names per dns.tunnel_guard_window, then dns_tunnel_budget)",
              index, text);
        } else if (parsed.target->kind == TargetKind::Network && parsed.target->network.prefixLength == 0) {
          ctx.warning(
              "world access by address: every " +
                  std::string(parsed.target->network.address.family == common::IpFamily::V4 ? "IPv4"
                                                                                            : "IPv6") +
                  " destination on port " + std::to_string(parsed.target->port) + " is allowed",
              index, text);
        }
        ruleSet.targets.push_back(std::move(*parsed.target));
        ruleSet.targetTexts.push_back(text);
      }
    }
  }

  // `status` is written by the controller and never affects the policy.
  if (ctx.errors() == 0) {
    load.valid.push_back(std::move(ruleSet));
  } else {
    load.rejected.push_back(std::move(ruleSet));
  }
}

void loadDocument(const YamlNode& doc, DocumentContext& ctx, ManifestLoad& load,
                  const std::string& sourceName, const PublicSuffixList& suffixes, bool system,
                  int listDepth) {
  if (!doc.isMapping()) {
    ctx.error("document is not a mapping (expected a Kubernetes object)");
    return;
  }
  const std::string apiVersion = scalarOr(doc, "apiVersion");
  const std::string kind = scalarOr(doc, "kind");
  if (kind == "List" && listDepth == 0 && (apiVersion == "v1" || apiVersion.empty())) {
    const YamlNode* items = doc.get("items");
    if (items == nullptr || !items->isSequence()) {
      ctx.error("kind List without an items list");
      return;
    }
    for (const auto& item : items->items)
      loadDocument(*item, ctx, load, sourceName, suffixes, system, listDepth + 1);
    return;
  }
  if (kind != kKind) {
    ctx.warning("skipped: kind \"" + kind + "\" (apiVersion \"" + apiVersion + "\") is not " +
                std::string(kKind));
    return;
  }
  if (apiVersion != kApiVersion) {
    ctx.error("apiVersion \"" + apiVersion + "\" is not " + std::string(kApiVersion));
    return;
  }
  DocumentContext itemContext(load, sourceName, ctx.document());
  loadRuleSetDocument(doc, itemContext, load, sourceName, suffixes, system);
}

bool looksLikeJson(std::string_view content) {
  const std::string_view trimmed = common::trimAscii(content);
  return !trimmed.empty() && trimmed.front() == '{';
}

std::string yamlErrorHint(const std::string& message) {
  if (message.find("anchor") != std::string::npos || message.find("alias") != std::string::npos) {
    return "; an unquoted '*' starts a YAML alias: quote targets that begin with '*', e.g. "
           "\"*.example.org:80\"";
  }
  return {};
}

}  // namespace

bool ManifestLoad::hasErrors() const {
  return std::any_of(problems.begin(), problems.end(),
                     [](const Problem& p) { return p.severity == Severity::Error; });
}

std::string Problem::toString() const {
  std::string out = file;
  if (document > 0) {
    out += ": document " + std::to_string(document);
    if (!ruleSet.empty()) out += " (" + ruleSet + ")";
  }
  if (targetIndex) {
    out += ": target[" + std::to_string(*targetIndex) + "]";
    if (!target.empty()) out += " \"" + target + "\"";
  }
  out += severity == Severity::Error ? ": error: " : ": warning: ";
  out += message;
  return out;
}

ManifestLoad loadManifest(std::string_view content, const std::string& sourceName,
                          const PublicSuffixList& suffixes, bool system) {
  ManifestLoad load;
  DocumentContext fileContext(load, sourceName, 0);
  if (content.size() > kMaxManifestBytes) {
    fileContext.error("file too large (" + std::to_string(content.size()) + " bytes; limit " +
                      std::to_string(kMaxManifestBytes) + ")");
    return load;
  }
  YamlStream stream = looksLikeJson(content) ? parseJsonDocument(content) : parseYamlStream(content);
  if (stream.error) {
    const YamlError& e = *stream.error;
    if (e.line > 0) {
      fileContext.error("invalid YAML at line " + std::to_string(e.line) + ", column " +
                        std::to_string(e.column) + ": " + e.message + yamlErrorHint(e.message));
    } else {
      fileContext.error(e.message);
    }
    return load;
  }
  const auto& documents = stream.documents;
  if (documents.size() > kMaxDocumentsPerFile) {
    fileContext.error("too many documents (" + std::to_string(documents.size()) + "; limit " +
                      std::to_string(kMaxDocumentsPerFile) + ")");
    return load;
  }
  int index = 0;
  for (const auto& doc : documents) {
    ++index;
    if (doc->isNull()) continue;  // empty documents ("---" at the end) are fine
    DocumentContext ctx(load, sourceName, index);
    loadDocument(*doc, ctx, load, sourceName, suffixes, system, 0);
  }
  return load;
}

ManifestLoad loadManifestFile(const std::string& path, const PublicSuffixList& suffixes, bool system) {
  ManifestLoad load;
  DocumentContext fileContext(load, path, 0);
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) {
    fileContext.error("cannot read: " + ec.message());
    return load;
  }
  if (size > kMaxManifestBytes) {
    fileContext.error("file too large (" + std::to_string(size) + " bytes; limit " +
                      std::to_string(kMaxManifestBytes) + ")");
    return load;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fileContext.error("cannot open for reading");
    return load;
  }
  std::string content(static_cast<size_t>(size), '\0');
  in.read(content.data(), static_cast<std::streamsize>(size));
  content.resize(static_cast<size_t>(in.gcount()));
  return loadManifest(content, path, suffixes, system);
}

bool isManifestFileName(std::string_view fileName) {
  if (fileName.empty() || fileName.front() == '.')
    return false;  // hidden, editor and ConfigMap "..data" files
  return fileName.ends_with(".yaml") || fileName.ends_with(".yml") || fileName.ends_with(".json");
}

std::vector<std::string> listManifestFiles(const std::string& dir, std::vector<Problem>& problems) {
  std::vector<std::string> files;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code typeError;
    if (isManifestFileName(it->path().filename().string()) &&
        std::filesystem::is_regular_file(it->path(), typeError)) {
      files.push_back(it->path().string());
    }
  }
  if (ec) {
    Problem problem;
    problem.severity = Severity::Warning;
    problem.file = dir;
    problem.message = ec == std::errc::no_such_file_or_directory
                          ? "rules directory does not exist (yet); nothing from it is allowed"
                          : "rules directory cannot be read: " + ec.message();
    problems.push_back(std::move(problem));
  }
  std::sort(files.begin(), files.end());
  return files;
}

void RuleSetIds::note(const RuleSet& ruleSet, const std::string& file, std::vector<Problem>& problems) {
  const auto [it, inserted] = firstSource_.emplace(ruleSet.id(), ruleSet.source);
  if (inserted) return;
  Problem problem;
  problem.severity = Severity::Warning;
  problem.file = file;
  problem.ruleSet = ruleSet.id();
  problem.message = "rule set " + ruleSet.id() + " is also defined in " + it->second + "; both apply";
  problems.push_back(std::move(problem));
}

ManifestLoad loadRulesDirectories(const std::vector<std::string>& dirs, const PublicSuffixList& suffixes,
                                  const std::vector<std::string>& systemDirs) {
  ManifestLoad all;
  RuleSetIds ids;
  for (const std::string& dir : dirs) {
    const bool system = std::find(systemDirs.begin(), systemDirs.end(), dir) != systemDirs.end();
    for (const std::string& file : listManifestFiles(dir, all.problems)) {
      ManifestLoad one = loadManifestFile(file, suffixes, system);
      for (RuleSet& ruleSet : one.valid) {
        ids.note(ruleSet, file, one.problems);
        all.valid.push_back(std::move(ruleSet));
      }
      for (RuleSet& ruleSet : one.rejected) all.rejected.push_back(std::move(ruleSet));
      for (Problem& problem : one.problems) all.problems.push_back(std::move(problem));
    }
  }
  return all;
}

}  // namespace policy
