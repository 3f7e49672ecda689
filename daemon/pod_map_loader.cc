#include "daemon/pod_map_loader.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
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

// What stat(2) says about the file: a rename (the controller's way of
// writing it) changes the inode, an edit in place the size or times.
FileStamp stampOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  FileStamp stamp;
  stamp.valid = true;
  stamp.device = st.st_dev;
  stamp.inode = st.st_ino;
  stamp.size = st.st_size;
  stamp.mtimeNs = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  stamp.ctimeNs = static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  return stamp;
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
  // The safety-net rescan (every 10 s) and changes to other files of the
  // folder find the file as it was: skip reading a map of a large cluster
  // (megabytes) when stat(2) says nothing changed. As git does for its
  // index, a file changed within the last 2 s is read anyway: an edit in
  // place of the same size within one timestamp tick cannot hide.
  const FileStamp stamp = stampOf(path_);
  const int64_t nowNs = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  if (loaded_ && stamp.valid && stamp == lastStamp_ && nowNs - stamp.mtimeNs > 2'000'000'000 &&
      nowNs - stamp.ctimeNs > 2'000'000'000) {
    return;
  }
  lastStamp_ = stamp;
  std::string text;
  std::string error;
  const ReadResult read = readWhole(path_, text, error);
  if (read == ReadResult::Failed) {
    lastStamp_ = {};  // read it again next time
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
