// controller_bench: drives a real kube-apiserver and times how fast a
// running egress-controller mirrors the changes into its rules dir, seen
// through inotify (bench/controller/run.sh starts both).
//
//   controller_bench latency KUBECONFIG RULES_DIR COUNT
//       COUNT sequential changes of namespace "bench" (create, update,
//       delete, create, ...; one object per create/update/delete triple),
//       each sent with the controller's own HTTP client, and the time until
//       the rules dir shows it: the file renamed into place (create), with
//       the new target (update), unlinked (delete).
//   controller_bench kubectl KUBECTL KUBECONFIG RULES_DIR COUNT
//       COUNT creates with `kubectl apply -f FILE`, timed from the start of
//       kubectl (so kubectl's own start-up and its GET + POST are included).
//   controller_bench bulk KUBECONFIG RULES_DIR COUNT PREFIX THREADS
//       COUNT creates from THREADS connections at once; the time from the
//       first request to the last response, and to the last file.
//
// Each prints one JSON object on stdout. Exit status 1 when a request fails
// or a change does not show up within 10 s (latency) or 120 s (bulk).
//
// Times: std::chrono::steady_clock; event times are taken by a thread that
// blocks on the inotify descriptor, so they do not depend on when the
// main thread looks.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/kube_client.h"
#include "controller/kubeconfig.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr const char* kNamespace = "bench";
constexpr const char* kCollection = "/apis/zalando.org/v1/namespaces/bench/egressrulesets";

double msBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// One file event in the rules dir.
struct FileEvent {
  std::string name;
  bool removed = false;  // IN_DELETE; otherwise IN_MOVED_TO (the controller renames into place)
  std::string content;   // for renames when content is wanted
  Clock::time_point at;
};

// Records every IN_MOVED_TO / IN_DELETE of the directory with its time.
// Thread-safe; the reader thread runs until destruction.
class DirWatcher {
 public:
  DirWatcher(const std::string& dir, bool readContent) : dir_(dir), readContent_(readContent) {
    fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ < 0 || inotify_add_watch(fd_, dir.c_str(), IN_MOVED_TO | IN_DELETE) < 0) {
      throw std::runtime_error("inotify on " + dir + " failed");
    }
    thread_ = std::thread([this] { loop(); });
  }
  ~DirWatcher() {
    stop_.store(true);
    thread_.join();
    ::close(fd_);
  }
  DirWatcher(const DirWatcher&) = delete;
  DirWatcher& operator=(const DirWatcher&) = delete;

  size_t mark() {
    const std::lock_guard lock(mutex_);
    return events_.size();
  }

  // The first event from index `from` on that satisfies `match`, waiting up
  // to `timeout`; nullopt on timeout.
  std::optional<FileEvent> waitFor(size_t from, const std::function<bool(const FileEvent&)>& match,
                                   std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    const auto deadline = Clock::now() + timeout;
    size_t next = from;
    while (true) {
      for (; next < events_.size(); ++next) {
        if (match(events_[next])) return events_[next];
      }
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && next == events_.size()) {
        return std::nullopt;
      }
    }
  }

  // Waits until `count` distinct names starting with `prefix` were renamed
  // into place; returns the time of the last one, nullopt on timeout.
  std::optional<Clock::time_point> waitForNames(const std::string& prefix, size_t count,
                                                std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    const auto deadline = Clock::now() + timeout;
    size_t next = 0;
    std::set<std::string> seen;
    Clock::time_point last{};
    while (true) {
      for (; next < events_.size(); ++next) {
        const FileEvent& e = events_[next];
        if (!e.removed && e.name.starts_with(prefix) && seen.insert(e.name).second) last = e.at;
      }
      if (seen.size() >= count) return last;
      if (overflowed_) return std::nullopt;
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && next == events_.size()) {
        return std::nullopt;
      }
    }
  }

  bool overflowed() {
    const std::lock_guard lock(mutex_);
    return overflowed_;
  }

 private:
  void loop() {
    alignas(inotify_event) char buffer[64 * 1024];
    while (!stop_.load()) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::read(fd_, buffer, sizeof buffer);
      const auto now = Clock::now();
      if (n <= 0) continue;
      std::vector<FileEvent> batch;
      bool overflow = false;
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buffer + off);
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
        if ((ev->mask & IN_Q_OVERFLOW) != 0) overflow = true;
        if (ev->len == 0) continue;
        FileEvent e;
        e.name = ev->name;
        e.removed = (ev->mask & IN_DELETE) != 0;
        e.at = now;
        if (readContent_ && !e.removed) {
          std::ifstream in(dir_ + "/" + e.name);
          std::ostringstream s;
          s << in.rdbuf();
          e.content = s.str();
        }
        batch.push_back(std::move(e));
      }
      {
        const std::lock_guard lock(mutex_);
        for (auto& e : batch) events_.push_back(std::move(e));
        overflowed_ = overflowed_ || overflow;
      }
      cv_.notify_all();
    }
  }

  std::string dir_;
  bool readContent_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<FileEvent> events_;
  bool overflowed_ = false;
  std::thread thread_;
};

std::string ruleSet(const std::string& name, const std::string& target) {
  return json{{"apiVersion", "zalando.org/v1"},
              {"kind", "EgressRuleSet"},
              {"metadata", {{"name", name}, {"namespace", kNamespace}}},
              {"spec", {{"targets", {target}}}}}
      .dump();
}

std::string fileName(const std::string& name) {
  return std::string(kNamespace) + "_" + name + ".json";
}

controller::ClusterConfig loadCluster(const std::string& kubeconfig) {
  auto result = controller::loadKubeconfigFile(kubeconfig);
  if (!result.config) {
    std::string text;
    for (const auto& e : result.errors) text += e + "; ";
    throw std::runtime_error("kubeconfig: " + text);
  }
  return *result.config;
}

json summary(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  if (values.empty()) return json::object();
  // Nearest rank: the smallest value with at least p% of the samples at or below it.
  const auto rank = [&](double p) {
    const auto k = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
    return values[std::max<size_t>(k, 1) - 1];
  };
  double sum = 0;
  for (const double v : values) sum += v;
  return {{"count", values.size()},
          {"median_ms", rank(50)},
          {"p90_ms", rank(90)},
          {"p99_ms", rank(99)},
          {"max_ms", values.back()},
          {"min_ms", values.front()},
          {"mean_ms", sum / static_cast<double>(values.size())}};
}

int runLatency(const std::string& kubeconfig, const std::string& dir, int count) {
  controller::Stopper stopper;
  controller::KubeClient client(loadCluster(kubeconfig), stopper);
  DirWatcher watcher(dir, true);
  std::vector<double> fromSend;
  std::vector<double> fromResponse;
  std::vector<double> requestMs;
  std::map<std::string, std::vector<double>> byKind;
  for (int i = 0; i < count; ++i) {
    const int object = i / 3;
    const std::string name = "lat-" + std::to_string(object);
    const std::string file = fileName(name);
    const int step = i % 3;
    const std::string marker = "v2-" + std::to_string(object) + ".example.com:443";
    std::function<bool(const FileEvent&)> match;
    const char* kind = nullptr;
    const size_t mark = watcher.mark();
    const auto t0 = Clock::now();
    controller::HttpResponse response;
    if (step == 0) {
      kind = "create";
      response = client.request("POST", kCollection,
                                ruleSet(name, "v1-" + std::to_string(object) + ".example.com:443"));
      match = [&](const FileEvent& e) { return e.name == file && !e.removed; };
    } else if (step == 1) {
      kind = "update";
      const std::string patch = json{{"spec", {{"targets", {marker}}}}}.dump();
      response = client.request("PATCH", std::string(kCollection) + "/" + name, patch,
                                "application/merge-patch+json");
      match = [&](const FileEvent& e) {
        return e.name == file && !e.removed && e.content.find(marker) != std::string::npos;
      };
    } else {
      kind = "delete";
      response = client.request("DELETE", std::string(kCollection) + "/" + name);
      match = [&](const FileEvent& e) { return e.name == file && e.removed; };
    }
    const auto t1 = Clock::now();
    if (!response.ok()) {
      std::cerr << "controller_bench: " << kind << " " << name << ": " << response.describe() << "\n";
      return 1;
    }
    const auto event = watcher.waitFor(mark, match, std::chrono::seconds(10));
    if (!event) {
      std::cerr << "controller_bench: " << kind << " " << name << " not mirrored within 10 s\n";
      return 1;
    }
    fromSend.push_back(msBetween(t0, event->at));
    fromResponse.push_back(std::max(0.0, msBetween(t1, event->at)));
    requestMs.push_back(msBetween(t0, t1));
    byKind[kind].push_back(msBetween(t0, event->at));
  }
  json out{{"changes", count},
           {"from_request_sent", summary(fromSend)},
           {"from_response", summary(fromResponse)},
           {"api_request", summary(requestMs)}};
  for (const auto& [kind, values] : byKind) out["by_kind"][kind] = summary(values);
  std::cout << out.dump() << "\n";
  return 0;
}

int runKubectl(const std::string& kubectl, const std::string& kubeconfig, const std::string& dir, int count) {
  DirWatcher watcher(dir, false);
  std::vector<double> fromStart;
  std::vector<double> kubectlMs;
  const std::string manifest = (std::filesystem::temp_directory_path() /
                                ("egressd-controller-bench-" + std::to_string(::getpid()) + ".json"))
                                   .string();
  for (int i = 0; i < count; ++i) {
    const std::string name = "kubectl-" + std::to_string(i);
    {
      std::ofstream out(manifest);
      out << ruleSet(name, name + ".example.com:443");
    }
    const std::string file = fileName(name);
    const size_t mark = watcher.mark();
    std::vector<std::string> args{kubectl, "--kubeconfig", kubeconfig, "apply", "-f", manifest, "-o", "name"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    const auto t0 = Clock::now();
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, kubectl.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    int status = 0;
    if (rc != 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::cerr << "controller_bench: kubectl apply " << name << " failed\n";
      return 1;
    }
    const auto t1 = Clock::now();
    const auto event = watcher.waitFor(
        mark, [&](const FileEvent& e) { return e.name == file && !e.removed; }, std::chrono::seconds(10));
    if (!event) {
      std::cerr << "controller_bench: " << name << " not mirrored within 10 s\n";
      return 1;
    }
    fromStart.push_back(msBetween(t0, event->at));
    kubectlMs.push_back(msBetween(t0, t1));
  }
  std::filesystem::remove(manifest);
  std::cout << json{{"changes", count},
                    {"from_kubectl_start", summary(fromStart)},
                    {"kubectl", summary(kubectlMs)}}
                   .dump()
            << "\n";
  return 0;
}

int runBulk(const std::string& kubeconfig, const std::string& dir, int count, const std::string& prefix,
            int threads) {
  const controller::ClusterConfig cluster = loadCluster(kubeconfig);
  DirWatcher watcher(dir, false);
  std::atomic<int> next{0};
  std::atomic<int> failures{0};
  std::mutex lastMutex;
  Clock::time_point lastResponse{};
  const auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      controller::Stopper stopper;
      controller::KubeClient client(cluster, stopper);
      for (int i = next++; i < count; i = next++) {
        const std::string name = prefix + std::to_string(i);
        const auto response = client.request("POST", kCollection, ruleSet(name, name + ".example.com:443"));
        if (!response.ok()) {
          if (failures++ == 0)
            std::cerr << "controller_bench: create " << name << ": " << response.describe() << "\n";
          continue;
        }
        const auto now = Clock::now();
        const std::lock_guard lock(lastMutex);
        lastResponse = std::max(lastResponse, now);
      }
    });
  }
  for (auto& t : pool) t.join();
  if (failures.load() > 0) return 1;
  const auto mirrored = watcher.waitForNames(std::string(kNamespace) + "_" + prefix,
                                             static_cast<size_t>(count), std::chrono::seconds(120));
  if (!mirrored) {
    std::cerr << "controller_bench: not all " << count << " mirrored within 120 s"
              << (watcher.overflowed() ? " (inotify queue overflowed)" : "") << "\n";
    return 1;
  }
  // Cross-check with the directory itself.
  size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string n = entry.path().filename().string();
    if (n.starts_with(std::string(kNamespace) + "_" + prefix)) ++files;
  }
  std::cout << json{{"objects", count},
                    {"threads", threads},
                    {"create_seconds", msBetween(t0, lastResponse) / 1000.0},
                    {"mirrored_seconds", msBetween(t0, *mirrored) / 1000.0},
                    {"files_in_dir", files}}
                   .dump()
            << "\n";
  return files == static_cast<size_t>(count) ? 0 : 1;
}

int usage() {
  std::cerr << "usage: controller_bench latency KUBECONFIG RULES_DIR COUNT\n"
               "       controller_bench kubectl KUBECTL KUBECONFIG RULES_DIR COUNT\n"
               "       controller_bench bulk KUBECONFIG RULES_DIR COUNT PREFIX THREADS\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 4 && args[0] == "latency") return runLatency(args[1], args[2], std::stoi(args[3]));
    if (args.size() == 5 && args[0] == "kubectl")
      return runKubectl(args[1], args[2], args[3], std::stoi(args[4]));
    if (args.size() == 6 && args[0] == "bulk") {
      return runBulk(args[1], args[2], std::stoi(args[3]), args[4], std::stoi(args[5]));
    }
  } catch (const std::exception& e) {
    std::cerr << "controller_bench: " << e.what() << "\n";
    return 1;
  }
  return usage();
}
