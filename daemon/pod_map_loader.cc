#include "daemon/pod_map_loader.h"

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/errno_text.h"
#include "common/log.h"

namespace daemon_main {

namespace {

enum class ReadResult : uint8_t { Ok, Missing, Failed };

// The whole file; a map of a large cluster is a few megabytes.
ReadResult readWhole(const std::string& path, std::string& text, std::string& error) {
  std::error_code code;
  if (!std::filesystem::exists(path, code)) return ReadResult::Missing;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": " + common::errnoText(errno);
    return ReadResult::Failed;
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) {
    error = path + ": read failed";
    return ReadResult::Failed;
  }
  text = std::move(content).str();
  return ReadResult::Ok;
}

}  // namespace

PodMapLoader::PodMapLoader(event_base* base, std::string path,
                           common::SnapshotHolder<attribution::PodTable>& table)
    : path_(std::move(path)),
      table_(table),
      // 20 ms: a controller's rename is one event; the budget from a pod
      // becoming Running to its name in events is one second.
      watcher_(std::make_unique<RulesWatcher>(
          base, [this] { reload(); }, std::chrono::milliseconds(20), std::chrono::seconds(10))) {}

bool PodMapLoader::start(std::string& error) {
  reload();
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  return watcher_->watch({dir.empty() ? std::string(".") : dir}, error);
}

void PodMapLoader::reload() {
  std::string text;
  std::string error;
  const ReadResult read = readWhole(path_, text, error);
  if (read == ReadResult::Failed) {
    ++counters_.failures;
    common::LogLine(common::LogLevel::Error, "pods.map.unreadable")
        .field("file", path_)
        .field("error", error)
        .field("action", "keeping the last good map");
    return;
  }
  // The folder may hold other files (the shared emptyDir): only a change
  // of this file's text makes a new table.
  if (loaded_ && text == lastText_) return;
  const attribution::PodMapParse parsed = attribution::parsePodMap(text);
  for (const auto& problem : parsed.problems) {
    common::LogLine(common::LogLevel::Warn, "pods.map.problem")
        .field("file", path_)
        .field("problem", problem.toString());
  }
  auto table = std::make_shared<const attribution::PodTable>(attribution::PodTable::build(parsed.records));
  counters_.pods = table->size();
  counters_.bytes = table->bytes();
  counters_.problems = parsed.problems.size();
  ++counters_.loads;
  table_.publish(std::move(table));
  lastText_ = std::move(text);
  loaded_ = true;
  common::LogLine(common::LogLevel::Info, "pods.map.loaded")
      .field("file", path_)
      .field("pods", counters_.pods)
      .field("problems", counters_.problems)
      .field("present", read == ReadResult::Ok);
}

}  // namespace daemon_main
