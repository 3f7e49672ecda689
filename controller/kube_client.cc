#include "controller/kube_client.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "controller/watch_event.h"

namespace controller {

namespace {

using CurlSlist = common::CHandle<curl_slist, curl_slist_free_all>;

// A watch line holds one object; etcd refuses objects over 1.5 MiB.
constexpr size_t kMaxWatchLineBytes = size_t{4} * 1024 * 1024;
// A list page of 500 objects of up to 1.5 MiB each is theoretical; bound
// memory at something a real cluster never reaches.
constexpr size_t kMaxBodyBytes = size_t{256} * 1024 * 1024;

std::string readToken(const std::string& file) {
  std::ifstream in(file);
  std::ostringstream out;
  out << in.rdbuf();
  std::string token = out.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  return token;
}

curl_blob blobOf(const std::string& data) {
  curl_blob blob{};
  blob.data = const_cast<char*>(data.data());  // curl copies it (CURL_BLOB_COPY)
  blob.len = data.size();
  blob.flags = CURL_BLOB_COPY;
  return blob;
}

}  // namespace

void Stopper::request() {
  {
    const std::lock_guard lock(mutex_);
    stop_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
}

bool Stopper::waitFor(std::chrono::milliseconds duration) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, duration, [this] { return stop_.load(std::memory_order_acquire); });
}

std::string HttpResponse::describe() const {
  if (!transportError.empty()) return transportError;
  std::string out = "HTTP " + std::to_string(status);
  const nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_object() && doc.contains("message") && doc["message"].is_string()) {
    out += ": " + doc["message"].get<std::string>();
  }
  return out;
}

struct KubeClient::Transfer {
  CURL* curl = nullptr;
  const Stopper* stopper = nullptr;
  std::string body;
  bool tooLarge = false;
  const std::function<bool(std::string_view)>* onLine = nullptr;  // streaming when set
  LineSplitter lines{kMaxWatchLineBytes};
  bool streamEnded = false;  // onLine asked to stop, or a line was too long
  bool lineTooLong = false;

  static size_t write(char* data, size_t size, size_t count, void* user) {
    auto* self = static_cast<Transfer*>(user);
    const size_t bytes = size * count;
    long status = 0;
    curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, &status);
    if (self->onLine != nullptr && status == 200) {
      const bool ok = self->lines.append(std::string_view(data, bytes), *self->onLine);
      if (!ok) {
        self->streamEnded = true;
        self->lineTooLong = self->lines.pendingBytes() > 0;
        return CURL_WRITEFUNC_ERROR;
      }
      return bytes;
    }
    if (self->body.size() + bytes > kMaxBodyBytes) {
      self->tooLarge = true;
      return CURL_WRITEFUNC_ERROR;
    }
    self->body.append(data, bytes);
    return bytes;
  }

  static int progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    const auto* self = static_cast<Transfer*>(user);
    return self->stopper->requested() ? 1 : 0;  // non-zero aborts the transfer
  }
};

KubeClient::KubeClient(ClusterConfig config, const Stopper& stopper)
    : config_(std::move(config)), stopper_(stopper), curl_(curl_easy_init()) {}

HttpResponse KubeClient::perform(std::string_view method, const std::string& path, const std::string& body,
                                 std::string_view contentType, Transfer& transfer,
                                 std::chrono::seconds timeout) {
  HttpResponse response;
  CURL* curl = curl_.get();
  if (curl == nullptr) {
    response.transportError = "curl_easy_init failed";
    return response;
  }
  // reset keeps the connection cache and TLS session, drops old options.
  curl_easy_reset(curl);
  transfer.curl = curl;
  transfer.stopper = &stopper_;
  const std::string url = config_.server + path;
  const std::string methodText(method);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "egress-controller/0.1.0");
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_blob ca = blobOf(config_.caPem);
  if (!config_.caPem.empty()) {
    // Only the cluster's CA, as kubectl does: the blob replaces the CA
    // bundle, and the build-time CA directory (/etc/ssl/certs on Debian)
    // must not add every public CA back.
    curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
    curl_easy_setopt(curl, CURLOPT_CAPATH, nullptr);
  }
  curl_blob cert = blobOf(config_.clientCertPem);
  curl_blob key = blobOf(config_.clientKeyPem);
  if (!config_.clientCertPem.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &key);
    curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
  }
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(timeout.count()));
  // Notice a silently dead peer (node gone) on long watches.
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 10L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Transfer::write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &Transfer::progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);

  curl_slist* raw = nullptr;
  raw = curl_slist_append(raw, "Accept: application/json");
  std::string auth;
  const std::string token =
      config_.token.empty() && !config_.tokenFile.empty() ? readToken(config_.tokenFile) : config_.token;
  if (!token.empty()) {
    auth = "Authorization: Bearer " + token;
    raw = curl_slist_append(raw, auth.c_str());
  }
  std::string contentTypeHeader;
  if (methodText != "GET") {
    contentTypeHeader = "Content-Type: " + std::string(contentType);
    raw = curl_slist_append(raw, contentTypeHeader.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, methodText.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  const CurlSlist headers(raw);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());

  const CURLcode code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  response.body = std::move(transfer.body);
  if (code != CURLE_OK && !(transfer.streamEnded && !transfer.lineTooLong)) {
    if (stopper_.requested()) {
      response.transportError = "stopped";
    } else if (transfer.lineTooLong) {
      response.transportError = "watch line longer than 4 MiB";
    } else if (transfer.tooLarge) {
      response.transportError = "response larger than 256 MiB";
    } else {
      response.transportError = curl_easy_strerror(code);
    }
  }
  return response;
}

HttpResponse KubeClient::request(std::string_view method, const std::string& path, const std::string& body,
                                 std::string_view contentType) {
  Transfer transfer;
  return perform(method, path, body, contentType, transfer, std::chrono::seconds(60));
}

HttpResponse KubeClient::stream(const std::string& path, const std::function<bool(std::string_view)>& onLine,
                                std::chrono::seconds maxDuration) {
  Transfer transfer;
  transfer.onLine = &onLine;
  return perform("GET", path, {}, {}, transfer, maxDuration);
}

}  // namespace controller
