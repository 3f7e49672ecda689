#include "policy/manifest.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <set>

#include "common/strings.h"
#include "common/typo_distance.h"
#include "policy/internal_ranges.h"
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

std::string joinBounded(const std::vector<std::string>& names, size_t limit = 10) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) {
    if (i > 0) out += ", ";
    out += names[i];
  }
  if (names.size() > limit) out += " and " + std::to_string(names.size() - limit) + " more";
  return out;
}

class DocumentContext {
 public:
  DocumentContext(ManifestLoad& load, const std::string& file, int document)
      : load_(load), file_(file), document_(document) {}

  // An error that makes the document unreadable as a rule set.
  void error(std::string message, std::optional<size_t> index = std::nullopt, std::string target = {}) {
    add(Severity::Error, std::move(message), index, std::move(target));
    ++errors_;
  }
  // An error that costs one target, not the rule set.
  void targetError(std::string message, size_t index, std::string target) {
    add(Severity::Error, std::move(message), index, std::move(target));
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

// A refused document that does not name itself.
RuleSet unnamed(const std::string& sourceName, int document) {
  RuleSet ruleSet;
  ruleSet.source = sourceName + "#" + std::to_string(document);
  return ruleSet;
}

// ns/name as far as the document gives them (for refused documents: their
// last good version is found by this id).
RuleSet identify(const YamlNode& doc, const std::string& sourceName, int document, bool system) {
  RuleSet ruleSet;
  ruleSet.system = system;
  ruleSet.source = sourceName + "#" + std::to_string(document);
  const YamlNode* metadata = doc.get("metadata");
  if (metadata != nullptr && metadata->isMapping()) {
    ruleSet.name = scalarOr(*metadata, "name");
    ruleSet.ns = scalarOr(*metadata, "namespace");
  }
  if (ruleSet.ns.empty()) ruleSet.ns = "default";
  if (ruleSet.name.empty()) ruleSet.ns.clear();  // not identifiable
  return ruleSet;
}

// World access is the public internet only (policy/internal_ranges.h): the
// sentence lint adds to its warnings, saying which ranges stay closed and
// how to open one on purpose. An all-addresses CIDR target is the
// opposite: it does include them.
std::string internalRangesSentence(const Target& target) {
  const std::string port = std::to_string(target.port);
  if (target.kind == TargetKind::AnyName) {
    return ". World access covers public destinations only: " + std::string(closedRangesSummary()) +
           ", stay closed on port " + port +
           ". To open one on purpose, add an IP/CIDR target for it (e.g. \"10.20.0.0/16:" + port +
           "\"), or widen or narrow the list for the whole gateway with rules.internal_cidrs / "
           "rules.public_cidrs in egressd.toml";
  }
  return "; unlike \"*:" + port + "\", this includes internal addresses (" +
         std::string(closedRangesSummary()) + ")";
}

// The field an unknown `key` was most likely meant to be ("sepc", "Spec",
// "target", "nmae"), or empty when it is not a near miss of any of `fields`.
// Short fields allow one edit, longer ones two.
std::string_view fieldNearMiss(std::string_view key, std::initializer_list<std::string_view> fields) {
  if (key.empty() || key.size() > 64) return {};
  for (const std::string_view field : fields) {
    const size_t limit = field.size() <= 4 ? 1 : 2;
    if (common::typoDistance(key, field) <= limit) return field;
  }
  return {};
}

// Reports the keys of `node` (at `path`, "" for the top level) that are not
// in `known`: a near miss of one of `meant` is an error with a suggestion
// (a misspelt field would otherwise be silently ignored and its default, or
// nothing, be in force), any other unknown key a warning. Returns the
// fields suggested, so that "X is missing" is not said on top of "did you
// mean X?".
std::set<std::string_view> checkFields(const YamlNode& node, std::string_view path,
                                       std::initializer_list<std::string_view> known,
                                       std::initializer_list<std::string_view> meant, DocumentContext& ctx) {
  std::set<std::string_view> suggested;
  for (const auto& [key, value] : node.entries) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    const std::string field = std::string(path) + (path.empty() ? "" : ".") + key;
    const std::string_view meantField = fieldNearMiss(key, meant);
    if (meantField.empty()) {
      ctx.warning("unknown field " + field + " is ignored");
      continue;
    }
    ctx.error("unknown field " + field + "; did you mean " + std::string(path) + (path.empty() ? "" : ".") +
              std::string(meantField) + "?");
    suggested.insert(meantField);
  }
  return suggested;
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
  // Without a name the document is "document N", not "(default/)".
  if (!ruleSet.name.empty()) ctx.setRuleSet(ruleSet.id());

  const std::set<std::string_view> topSuggested =
      checkFields(doc, "", {"apiVersion", "kind", "metadata", "spec", "status"}, {"metadata", "spec"}, ctx);
  // ObjectMeta's fields; only the ones that make the rule set's identity are
  // worth an error (a misspelt label or annotation changes no rule: a warning).
  const std::set<std::string_view> metadataSuggested =
      hasMetadata
          ? checkFields(*metadata, "metadata",
                        {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
                         "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                         "labels", "annotations", "ownerReferences", "finalizers", "managedFields"},
                        {"name", "namespace"}, ctx)
          : std::set<std::string_view>{};

  if (!hasMetadata) {
    if (topSuggested.count("metadata") == 0) ctx.error("metadata is missing or not a mapping");
  } else if (ruleSet.name.empty()) {
    if (metadataSuggested.count("name") == 0) {
      ctx.error(metadata->get("generateName") != nullptr
                    ? "metadata.generateName is not supported; set metadata.name"
                    : "metadata.name is missing");
    }
  } else if (!isDns1123Subdomain(ruleSet.name)) {
    ctx.error("metadata.name \"" + ruleSet.name +
              "\" is not a valid name (lower-case letters, digits, '-' and '.', at most 253)");
  }
  if (!isDns1123Label(ruleSet.ns)) {
    ctx.error("metadata.namespace \"" + ruleSet.ns + "\" is not a valid namespace");
  }

  const YamlNode* spec = doc.get("spec");
  if (spec == nullptr || spec->isNull()) {
    if (topSuggested.count("spec") == 0) {
      ctx.error("spec is missing; expected spec.targets: [\"HOST:PORT\", ...]");
    }
  } else if (!spec->isMapping()) {
    ctx.error("spec must be a mapping with a targets list");
  } else {
    const std::set<std::string_view> specSuggested =
        checkFields(*spec, "spec", {"targets"}, {"targets"}, ctx);
    const YamlNode* targets = spec->get("targets");
    if (targets == nullptr || targets->isNull()) {
      if (specSuggested.count("targets") == 0) {
        ctx.error("spec.targets is missing; expected a list of \"HOST:PORT\" strings");
      }
    } else if (!targets->isSequence()) {
      ctx.error("spec.targets must be a list of \"HOST:PORT\" strings");
    } else {
      if (targets->items.empty()) ctx.warning("spec.targets is empty: this rule set allows nothing");
      std::map<std::string, size_t> seen;  // canonical → first index
      for (size_t index = 0; index < targets->items.size(); ++index) {
        const YamlNode& item = *targets->items[index];
        if (!item.isScalar()) {
          const std::string reason = "target must be a string \"HOST:PORT\"";
          ctx.targetError(reason, index, {});
          ruleSet.refused.push_back(RefusedTarget{index, {}, reason});
          continue;
        }
        const std::string& text = item.scalar;
        TargetParse parsed = parseTarget(text, suffixes);
        if (!parsed.target) {
          ctx.targetError(parsed.reason(), index, text);
          ruleSet.refused.push_back(RefusedTarget{index, text, parsed.reason()});
          continue;
        }
        const std::string canonical = parsed.target->canonical();
        const auto [earlier, inserted] = seen.emplace(canonical, index);
        if (!inserted) {
          const std::string& first = targets->items[earlier->second]->scalar;
          ctx.warning(
              "duplicate target: same as target[" + std::to_string(earlier->second) + "] \"" + first + "\"",
              index, text);
          continue;
        }
        if (parsed.target->kind == TargetKind::AnyName) {
          ctx.warning("world access: any host on port " + std::to_string(parsed.target->port) +
                          " is allowed (explicit, but check that this is intended)" +
                          internalRangesSentence(*parsed.target),
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
                  " destination on port " + std::to_string(parsed.target->port) + " is allowed" +
                  internalRangesSentence(*parsed.target),
              index, text);
        }
        ruleSet.targets.push_back(std::move(*parsed.target));
        ruleSet.targetTexts.push_back(text);
      }
    }
  }

  // `status` is written by the controller and never affects the policy.
  if (ctx.errors() == 0) {
    if (!ruleSet.refused.empty()) ctx.warning(refusedTargetsSummary(ruleSet));
    load.valid.push_back(std::move(ruleSet));
  } else {
    ruleSet.targets.clear();
    ruleSet.targetTexts.clear();
    ruleSet.refused.clear();
    load.rejected.push_back(std::move(ruleSet));
  }
}

// "EgressRuleset", "EgressRuleSets", "egressruleset", "EgresRuleSet": a
// rule set the user meant to write, not some other kind of object.
bool isKindNearMiss(std::string_view kind) {
  if (kind.empty() || kind.size() > 64) return false;
  return common::typoDistance(kind, "egressruleset") <= 2;
}

void loadDocument(const YamlNode& doc, DocumentContext& ctx, ManifestLoad& load,
                  const std::string& sourceName, const PublicSuffixList& suffixes, bool system,
                  int listDepth) {
  if (!doc.isMapping()) {
    ctx.error("document is not a mapping (expected a Kubernetes object)");
    load.rejected.push_back(unnamed(sourceName, ctx.document()));
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
    const RuleSet id = identify(doc, sourceName, ctx.document(), system);
    const bool meantAsRuleSet = isKindNearMiss(kind) || (kind.empty() && doc.get("spec") != nullptr);
    if (meantAsRuleSet && !id.name.empty()) ctx.setRuleSet(id.id());
    if (isKindNearMiss(kind)) {
      ctx.error("kind \"" + kind + "\" is not " + std::string(kKind) + "; did you mean " +
                std::string(kKind) + "?");
      load.rejected.push_back(id);
    } else if (kind.empty() && doc.get("spec") != nullptr) {
      ctx.error("kind is missing; expected kind: " + std::string(kKind));
      load.rejected.push_back(id);
    } else {
      ctx.warning("skipped: kind \"" + kind + "\" (apiVersion \"" + apiVersion + "\") is not " +
                  std::string(kKind));
    }
    return;
  }
  if (apiVersion != kApiVersion) {
    const RuleSet id = identify(doc, sourceName, ctx.document(), system);
    if (!id.name.empty()) ctx.setRuleSet(id.id());
    ctx.error("apiVersion \"" + apiVersion + "\" is not " + std::string(kApiVersion));
    load.rejected.push_back(id);
    return;
  }
  DocumentContext itemContext(load, sourceName, ctx.document());
  loadRuleSetDocument(doc, itemContext, load, sourceName, suffixes, system);
}

bool looksLikeJson(std::string_view content) {
  const std::string_view trimmed = common::trimAscii(content);
  return !trimmed.empty() && trimmed.front() == '{';
}

// Line `number` (1-based) of `text`, without its line break.
std::string_view lineOf(std::string_view text, size_t number) {
  size_t start = 0;
  for (size_t line = 1; line < number; ++line) {
    const size_t next = text.find('\n', start);
    if (next == std::string_view::npos) return {};
    start = next + 1;
  }
  std::string_view line = text.substr(start, text.find('\n', start) - start);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line.substr(0, 512);
}

bool isAnchorChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// An unquoted '*' at the start of a plain scalar that libyaml cannot read as
// an alias ("- *.example.org:80", "- *:80", "[*.a.example:443]"): the most
// common way to break an EgressRuleSet, so each one is named.
struct StarAlias {
  size_t line = 0;    // 1-based, in the text scanned
  size_t column = 0;  // 1-based, of the '*'
  std::string token;  // what the user wrote, "*.example.org:80"
};

std::vector<StarAlias> findUnquotedStars(std::string_view text) {
  std::vector<StarAlias> out;
  size_t number = 0;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find('\n', start), text.size());
    const std::string_view line = text.substr(start, end - start);
    ++number;
    char quote = 0;
    char previous = 0;  // last non-blank character outside quotes
    bool flow = false;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (quote != 0) {
        if (c == quote) quote = 0;
        continue;
      }
      if (c == ' ' || c == '\t' || c == '\r') continue;
      if (c == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) break;
      if (c == '"' || c == '\'') {
        if (previous == 0 || previous == '-' || previous == ':' || previous == '[' || previous == ',' ||
            previous == '{')
          quote = c;
        previous = c;
        continue;
      }
      if (c == '[' || c == '{') flow = true;
      const bool scalarStart = previous == 0 || previous == '-' || previous == '[' || previous == ',' ||
                               previous == '{' || previous == '?' || (previous == ':');
      const bool indicatorSpaced = previous == 0 || previous == '[' || previous == ',' || previous == '{' ||
                                   (i > 0 && (line[i - 1] == ' ' || line[i - 1] == '\t'));
      if (c == '*' && scalarStart && indicatorSpaced) {
        size_t stop = i + 1;
        while (stop < line.size() && line[stop] != ' ' && line[stop] != '\t' && line[stop] != '\r' &&
               !(flow && (line[stop] == ',' || line[stop] == ']' || line[stop] == '}')))
          ++stop;
        const std::string_view token = line.substr(i, stop - i);
        const bool validAlias = token.size() > 1 && std::all_of(token.begin() + 1, token.end(),
                                                                [](char t) { return isAnchorChar(t); });
        if (!validAlias) out.push_back(StarAlias{number, i + 1, std::string(token.substr(0, 300))});
        i = stop - 1;
        previous = 'x';
        continue;
      }
      previous = c;
    }
    if (end == text.size()) break;
    start = end + 1;
  }
  return out;
}

// Splits a YAML stream at its "---" lines, so that a syntax error costs only
// its own document. `firstLine` is 1-based.
struct Chunk {
  size_t firstLine = 1;
  std::string_view text;
};

std::vector<Chunk> splitDocuments(std::string_view content) {
  std::vector<Chunk> chunks;
  size_t chunkStart = 0;
  size_t chunkLine = 1;
  size_t number = 0;
  size_t start = 0;
  while (start < content.size()) {
    const size_t end = std::min(content.find('\n', start), content.size());
    ++number;
    const std::string_view line = content.substr(start, end - start);
    const bool separator =
        line.starts_with("---") && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
    if (separator && start > chunkStart) {
      chunks.push_back(Chunk{chunkLine, content.substr(chunkStart, start - chunkStart)});
      chunkStart = start;
      chunkLine = number;
    }
    start = end + 1;
  }
  chunks.push_back(Chunk{chunkLine, content.substr(chunkStart)});
  return chunks;
}

Problem fileProblem(const std::string& file, int document, std::string message, size_t line, size_t column,
                    std::string_view content) {
  Problem problem;
  problem.file = file;
  problem.document = document;
  problem.message = std::move(message);
  problem.line = line;
  problem.column = column;
  if (line > 0) problem.sourceLine = std::string(lineOf(content, line));
  return problem;
}

std::string yamlMessage(const YamlError& e) {
  return "invalid YAML: " + e.message;
}

void loadDocuments(const YamlStream& stream, ManifestLoad& load, int& index, const std::string& sourceName,
                   const PublicSuffixList& suffixes, bool system) {
  for (const auto& doc : stream.documents) {
    ++index;
    if (doc->isNull()) continue;  // empty documents ("---" at the end) are fine
    ++load.documents;
    DocumentContext ctx(load, sourceName, index);
    loadDocument(*doc, ctx, load, sourceName, suffixes, system, 0);
  }
}

// The stream did not parse: load it document by document, so that one
// broken document does not take the others with it, and name every
// unquoted '*' of the broken ones.
void loadBrokenYaml(std::string_view content, const YamlError& whole, ManifestLoad& load,
                    const std::string& sourceName, const PublicSuffixList& suffixes, bool system) {
  const std::vector<Chunk> chunks = splitDocuments(content);
  std::vector<std::pair<const Chunk*, YamlStream>> parsed;
  bool anyBroken = false;
  size_t total = 0;
  for (const Chunk& chunk : chunks) {
    YamlStream stream = parseYamlStream(chunk.text);
    anyBroken = anyBroken || stream.error.has_value();
    total += stream.documents.size();
    parsed.emplace_back(&chunk, std::move(stream));
  }
  if (!anyBroken || total > kMaxDocumentsPerFile) {
    // The error is not inside one document (e.g. in a directive): the file
    // as a whole cannot be read.
    load.problems.push_back(
        fileProblem(sourceName, 0, yamlMessage(whole), whole.line, whole.column, content));
    load.failedAsWhole = true;
    return;
  }
  int index = 0;
  for (const auto& [chunk, stream] : parsed) {
    if (!stream.error) {
      loadDocuments(stream, load, index, sourceName, suffixes, system);
      continue;
    }
    ++index;
    ++load.documents;
    const std::vector<StarAlias> stars = findUnquotedStars(chunk->text);
    const size_t errorLine = stream.error->line + chunk->firstLine - 1;
    bool errorCovered = false;
    for (const StarAlias& star : stars) {
      const size_t line = star.line + chunk->firstLine - 1;
      errorCovered = errorCovered || line == errorLine;
      load.problems.push_back(fileProblem(
          sourceName, index,
          "an unquoted '*' starts a YAML alias, so this document cannot be read; quote the target: \"" +
              star.token + "\"",
          line, star.column, content));
    }
    if (!errorCovered) {
      load.problems.push_back(fileProblem(sourceName, index, yamlMessage(*stream.error), errorLine,
                                          stream.error->column, content));
    }
    load.rejected.push_back(unnamed(sourceName, index));
  }
}

}  // namespace

bool ManifestLoad::hasErrors() const {
  return std::any_of(problems.begin(), problems.end(),
                     [](const Problem& p) { return p.severity == Severity::Error; });
}

std::string Problem::toString() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line) + ":" + std::to_string(column);
  } else if (document > 0) {
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

std::string Problem::excerpt() const {
  if (line == 0 || sourceLine.empty()) return {};
  std::string out = "    " + sourceLine + "\n    ";
  for (size_t i = 0; i + 1 < column && i < sourceLine.size(); ++i) out += sourceLine[i] == '\t' ? '\t' : ' ';
  out += "^\n";
  return out;
}

std::string refusedTargetsSummary(const RuleSet& ruleSet) {
  if (ruleSet.refused.empty()) return {};
  std::vector<std::string> names;
  names.reserve(ruleSet.refused.size());
  for (const RefusedTarget& refused : ruleSet.refused) {
    names.push_back("target[" + std::to_string(refused.index) + "]" +
                    (refused.text.empty() ? std::string() : " \"" + refused.text + "\""));
  }
  const size_t total = ruleSet.refused.size() + ruleSet.targets.size();
  std::string out = std::to_string(ruleSet.refused.size()) + " of " + std::to_string(total) +
                    (total == 1 ? " target" : " targets") + " will not be in force: " + joinBounded(names);
  if (ruleSet.targets.empty()) {
    out += "; none of its targets is in force, the rule set allows nothing";
  } else if (ruleSet.targets.size() == 1) {
    out += "; the other one will";
  } else {
    out += "; the other " + std::to_string(ruleSet.targets.size()) + " will";
  }
  return out;
}

ManifestLoad loadManifest(std::string_view content, const std::string& sourceName,
                          const PublicSuffixList& suffixes, bool system) {
  ManifestLoad load;
  if (content.size() > kMaxManifestBytes) {
    load.problems.push_back(fileProblem(sourceName, 0,
                                        "file too large (" + std::to_string(content.size()) +
                                            " bytes; limit " + std::to_string(kMaxManifestBytes) + ")",
                                        0, 0, {}));
    load.failedAsWhole = true;
    return load;
  }
  const bool json = looksLikeJson(content);
  YamlStream stream = json ? parseJsonDocument(content) : parseYamlStream(content);
  if (stream.error && !json) {
    loadBrokenYaml(content, *stream.error, load, sourceName, suffixes, system);
    return load;
  }
  if (stream.error) {
    const YamlError& e = *stream.error;
    load.problems.push_back(fileProblem(sourceName, 0, e.message, e.line, e.column, content));
    load.failedAsWhole = true;
    return load;
  }
  if (stream.documents.size() > kMaxDocumentsPerFile) {
    load.problems.push_back(fileProblem(sourceName, 0,
                                        "too many documents (" + std::to_string(stream.documents.size()) +
                                            "; limit " + std::to_string(kMaxDocumentsPerFile) + ")",
                                        0, 0, {}));
    load.failedAsWhole = true;
    return load;
  }
  int index = 0;
  loadDocuments(stream, load, index, sourceName, suffixes, system);
  return load;
}

ManifestLoad loadManifestFile(const std::string& path, const PublicSuffixList& suffixes, bool system) {
  ManifestLoad load;
  auto fail = [&](std::string message) {
    load.problems.push_back(fileProblem(path, 0, std::move(message), 0, 0, {}));
    load.failedAsWhole = true;
    return load;
  };
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return fail("cannot read: " + ec.message());
  if (size > kMaxManifestBytes) {
    return fail("file too large (" + std::to_string(size) + " bytes; limit " +
                std::to_string(kMaxManifestBytes) + ")");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail("cannot open for reading");
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

DirectoryListing listRulesDirectory(const std::string& dir, std::vector<Problem>& problems) {
  DirectoryListing listing;
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec)) {
    Problem problem;
    problem.file = dir;
    problem.message =
        "rules directory is not a directory; rules.dirs names directories of *.yaml, *.yml and "
        "*.json files";
    problems.push_back(std::move(problem));
    return listing;
  }
  ec.clear();
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name.front() == '.') continue;  // hidden, editor and ConfigMap "..data" files
    std::error_code typeError;
    if (isManifestFileName(name) && std::filesystem::is_regular_file(it->path(), typeError)) {
      listing.files.push_back(it->path().string());
      continue;
    }
    listing.skipped.push_back(it->path().string());
    if (isManifestFileName(name)) {
      // Named as a rule file but not one: a link whose file went away (its
      // rule sets are no longer in force), a directory. Said, not only
      // listed among the other skipped names.
      std::error_code linkError;
      const bool dangling = std::filesystem::is_symlink(it->symlink_status(linkError)) &&
                            !std::filesystem::exists(it->path(), linkError);
      Problem problem;
      problem.severity = Severity::Warning;
      problem.file = it->path().string();
      problem.message = dangling ? "not read: a symbolic link to a file that does not exist"
                                 : "not read: not a regular file (a directory?)";
      problems.push_back(std::move(problem));
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
  std::sort(listing.files.begin(), listing.files.end());
  std::sort(listing.skipped.begin(), listing.skipped.end());
  return listing;
}

std::vector<std::string> listManifestFiles(const std::string& dir, std::vector<Problem>& problems) {
  return listRulesDirectory(dir, problems).files;
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

size_t RulesLoad::errors() const {
  return static_cast<size_t>(std::count_if(problems.begin(), problems.end(),
                                           [](const Problem& p) { return p.severity == Severity::Error; }));
}

size_t RulesLoad::warnings() const {
  return problems.size() - errors();
}

size_t RulesLoad::targetsInForce() const {
  size_t count = 0;
  for (const RuleSet& ruleSet : ruleSets) count += ruleSet.targets.size();
  return count;
}

RulesLoader::RulesLoader(const PublicSuffixList& suffixes,
                         const std::map<std::string, std::vector<RuleSet>>* lastGood,
                         std::function<bool(const std::string&)> beingWritten)
    : suffixes_(suffixes), lastGood_(lastGood), beingWritten_(std::move(beingWritten)) {}

void RulesLoader::addDirectory(const std::string& dir, bool system) {
  DirectoryListing listing = listRulesDirectory(dir, out_.problems);
  for (std::string& skipped : listing.skipped) out_.skipped.push_back(std::move(skipped));
  for (const std::string& file : listing.files) {
    // A file open for writing may be empty or cut short on disk: it is not
    // read (or what was read is dropped, when the write began meanwhile),
    // and its last good version stays until the writer closes it.
    bool deferred = beingWritten_ && beingWritten_(file);
    ManifestLoad load;
    if (!deferred) {
      load = loadManifestFile(file, suffixes_, system);
      deferred = beingWritten_ && beingWritten_(file);
    }
    if (deferred) {
      keepDeferred(file);
      continue;
    }
    std::error_code ec;
    if (load.failedAsWhole && !std::filesystem::exists(file, ec)) continue;  // deleted while we listed
    add(file, std::move(load));
  }
}

void RulesLoader::keepDeferred(const std::string& file) {
  ++out_.files;
  out_.deferred.push_back(file);
  if (lastGood_ == nullptr) return;
  const auto last = lastGood_->find(file);
  if (last == lastGood_->end()) return;  // new: it counts once it is closed
  for (const RuleSet& ruleSet : last->second) {
    ids_.note(ruleSet, file, out_.problems);
    out_.refusedTargets += ruleSet.refused.size();
    out_.ruleSets.push_back(ruleSet);
  }
  out_.byFile[file] = last->second;
}

void RulesLoader::addFile(const std::string& path, bool system) {
  add(path, loadManifestFile(path, suffixes_, system));
}

void RulesLoader::addContent(std::string_view content, const std::string& name, bool system) {
  add(name, loadManifest(content, name, suffixes_, system));
}

void RulesLoader::add(const std::string& file, ManifestLoad load) {
  ++out_.files;
  out_.documents += load.documents;
  for (Problem& problem : load.problems) out_.problems.push_back(std::move(problem));
  out_.rejectedRuleSets += load.rejected.size();
  for (const RuleSet& ruleSet : load.rejected)
    out_.rejected.push_back(ruleSet.name.empty() ? ruleSet.source : ruleSet.id());
  std::vector<RuleSet> inForce = std::move(load.valid);

  const std::vector<RuleSet>* last = nullptr;
  if (lastGood_ != nullptr) {
    const auto it = lastGood_->find(file);
    if (it != lastGood_->end()) last = &it->second;
  }
  auto warn = [&](std::string message) {
    Problem problem;
    problem.severity = Severity::Warning;
    problem.file = file;
    problem.message = std::move(message);
    out_.problems.push_back(std::move(problem));
  };
  auto idsOf = [](const std::vector<RuleSet>& sets) {
    std::vector<std::string> ids;
    ids.reserve(sets.size());
    for (const RuleSet& ruleSet : sets) ids.push_back(ruleSet.id());
    return ids;
  };
  if (last != nullptr && !last->empty() && load.failedAsWhole) {
    // Unreadable as a whole (I/O, size, JSON syntax): the last good version
    // stays, a half-written file never removes rules.
    inForce = *last;
    out_.keptLastGood.push_back(file);
    warn("keeping the last good version of this file (" + std::to_string(last->size()) +
         (last->size() == 1 ? " rule set: " : " rule sets: ") + joinBounded(idsOf(*last)) +
         ") until it loads again");
  } else if (last != nullptr && !load.rejected.empty()) {
    // Some documents cannot be read as rule sets. Those that name
    // themselves keep their own last good version; an anonymous one (broken
    // YAML) keeps every last good rule set of the file that the readable
    // documents do not account for.
    std::set<std::string> present;
    std::set<std::string> refusedIds;
    bool anonymous = false;
    for (const RuleSet& ruleSet : inForce) present.insert(ruleSet.id());
    for (const RuleSet& ruleSet : load.rejected) {
      if (ruleSet.name.empty()) {
        anonymous = true;
      } else {
        refusedIds.insert(ruleSet.id());
      }
    }
    std::vector<std::string> kept;
    for (const RuleSet& ruleSet : *last) {
      const std::string id = ruleSet.id();
      if (present.count(id) != 0) continue;
      if (anonymous || refusedIds.count(id) != 0) {
        inForce.push_back(ruleSet);
        present.insert(id);
        kept.push_back(id);
      }
    }
    if (!kept.empty()) {
      out_.keptLastGood.push_back(file);
      warn("keeping the last good version of " + joinBounded(kept) +
           ": a document of this file cannot be read as a rule set (the errors above)");
    }
  } else if (last != nullptr && load.documents == 0 && !last->empty()) {
    warn("the file holds no documents any more: its rule sets " + joinBounded(idsOf(*last)) + " are removed");
  }
  for (const RuleSet& ruleSet : inForce) {
    ids_.note(ruleSet, file, out_.problems);
    out_.refusedTargets += ruleSet.refused.size();
    out_.ruleSets.push_back(ruleSet);
  }
  out_.byFile[file] = std::move(inForce);
}

RulesLoad RulesLoader::finish() && {
  return std::move(out_);
}

RulesLoad loadRulesDirectories(const std::vector<std::string>& dirs, const PublicSuffixList& suffixes,
                               const std::vector<std::string>& systemDirs) {
  RulesLoader loader(suffixes);
  for (const std::string& dir : dirs) {
    loader.addDirectory(dir, std::find(systemDirs.begin(), systemDirs.end(), dir) != systemDirs.end());
  }
  return std::move(loader).finish();
}

}  // namespace policy
