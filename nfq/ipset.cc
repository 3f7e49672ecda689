#include "nfq/ipset.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/ipset/ip_set.h>
#include <linux/netfilter/ipset/ip_set_hash.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "common/errno_text.h"

namespace nfq {
namespace {

constexpr const char* kTypeName = "hash:ip,port";
constexpr size_t kBatchEntries = 64;
// One ADD: headers, protocol, name, and the nested IP/port/proto/timeout.
constexpr size_t kAddMessageMax = 160;
constexpr uint32_t kDefaultTimeout = 600;  // the set's default; every entry we add carries its own

uint16_t messageType(int command) noexcept {
  return static_cast<uint16_t>((NFNL_SUBSYS_IPSET << 8) | command);
}

uint8_t nfproto(common::IpFamily family) noexcept {
  return family == common::IpFamily::V4 ? NFPROTO_IPV4 : NFPROTO_IPV6;
}

// Header, nfgenmsg and the protocol attribute every ipset command starts
// with (ip_set_core.c rejects requests without IPSET_ATTR_PROTOCOL).
nlmsghdr* putHeader(void* buffer, int command, uint16_t flags, uint32_t seq, uint8_t family) noexcept {
  nlmsghdr* header = mnl_nlmsg_put_header(buffer);
  header->nlmsg_type = messageType(command);
  header->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
  header->nlmsg_seq = seq;
  auto* generic = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(header, sizeof(nfgenmsg)));
  generic->nfgen_family = family;
  generic->version = NFNETLINK_V0;
  generic->res_id = htons(0);
  mnl_attr_put_u8(header, IPSET_ATTR_PROTOCOL, IPSET_PROTOCOL);
  return header;
}

bool validName(std::string_view name) noexcept {
  return !name.empty() && name.size() <= kIpSetMaxNameLength && name.find('\0') == std::string_view::npos;
}

std::string ipsetErrorText(int code) {
  switch (code) {
    case ENOENT:
      return "no such set";
    case IPSET_ERR_PROTOCOL:
      return "kernel rejected the request (ipset protocol)";
    case IPSET_ERR_FIND_TYPE:
      return std::string("kernel has no ") + kTypeName + " set type";
    case IPSET_ERR_MAX_SETS:
      return "kernel set limit reached";
    case IPSET_ERR_EXIST:
      return "a set of that name exists with other parameters";
    case IPSET_ERR_REFERENCED:
      return "set is still referenced by a rule";
    case IPSET_ERR_HASH_FULL:
      return "set is full";
    case IPSET_ERR_TIMEOUT:
      return "set has no timeout support";
    default:
      return code >= IPSET_ERR_PRIVATE ? "ipset error " + std::to_string(code) : common::errnoText(code);
  }
}

}  // namespace

size_t encodeAdd(std::span<uint8_t> buffer, std::string_view set, const SetEntry& entry,
                 uint32_t seq) noexcept {
  if (!validName(set) || buffer.size() < kAddMessageMax || entry.timeoutSeconds == 0) return 0;
  const bool v4 = entry.ip.family == common::IpFamily::V4;
  // No NLM_F_EXCL: the kernel then treats it as `ipset add -exist`, so a
  // re-added pair gets the new timeout instead of an error.
  nlmsghdr* header = putHeader(buffer.data(), IPSET_CMD_ADD, 0, seq, nfproto(entry.ip.family));
  char name[kIpSetMaxNameLength + 1] = {};
  std::memcpy(name, set.data(), set.size());
  mnl_attr_put_strz(header, IPSET_ATTR_SETNAME, name);
  nlattr* data = mnl_attr_nest_start(header, IPSET_ATTR_DATA);
  nlattr* ip = mnl_attr_nest_start(header, IPSET_ATTR_IP);
  // ip_set_get_ipaddr4/6 insist on the network-byte-order flag.
  mnl_attr_put(
      header,
      static_cast<uint16_t>((v4 ? IPSET_ATTR_IPADDR_IPV4 : IPSET_ATTR_IPADDR_IPV6) | NLA_F_NET_BYTEORDER),
      v4 ? 4 : 16, entry.ip.bytes.data());
  mnl_attr_nest_end(header, ip);
  const uint16_t port = htons(entry.port);
  mnl_attr_put(header, IPSET_ATTR_PORT | NLA_F_NET_BYTEORDER, sizeof port, &port);
  mnl_attr_put_u8(header, IPSET_ATTR_PROTO, IPPROTO_TCP);
  const uint32_t timeout = htonl(std::min(entry.timeoutSeconds, kIpSetMaxTimeout));
  mnl_attr_put(header, IPSET_ATTR_TIMEOUT | NLA_F_NET_BYTEORDER, sizeof timeout, &timeout);
  mnl_attr_nest_end(header, data);
  return MNL_ALIGN(header->nlmsg_len);
}

void IpSetClient::SocketClose::operator()(mnl_socket* socket) const noexcept {
  if (socket != nullptr) mnl_socket_close(socket);
}

// What a synchronous request collects from the kernel's data answers.
struct IpSetClient::Reply {
  IpSetHeader header;
  uint8_t revision = 0;
  bool gotRevision = false;
  std::optional<uint64_t> elements;  // IPSET_CMD_LIST header: IPSET_ATTR_DATA/IPSET_ATTR_ELEMENTS
};

bool IpSetClient::open(std::string& error) {
  socket_.reset(mnl_socket_open(NETLINK_NETFILTER));
  if (!socket_) {
    error = "netlink socket: " + common::errnoText(errno);
    return false;
  }
  if (mnl_socket_bind(socket_.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    error = "netlink bind: " + common::errnoText(errno);
    socket_.reset();
    return false;
  }
  portId_ = mnl_socket_get_portid(socket_.get());
  const int fd = mnl_socket_get_fd(socket_.get());
  // Error answers without a copy of the request: they stay small, so many
  // fit in the receive buffer between two drains.
  const int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  // Synchronous requests never hang on a kernel that does not answer.
  const timeval timeout{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  batch_.assign(kBatchEntries * kAddMessageMax, 0);
  receive_.assign(MNL_SOCKET_BUFFER_SIZE, 0);
  return true;
}

bool IpSetClient::request(std::vector<uint8_t>& message, Reply* reply, std::string& error, int* code) {
  auto* header = reinterpret_cast<nlmsghdr*>(message.data());
  header->nlmsg_flags |= NLM_F_ACK;
  const uint32_t seq = header->nlmsg_seq;
  if (mnl_socket_sendto(socket_.get(), header, header->nlmsg_len) < 0) {
    if (code != nullptr) *code = errno;
    error = "netlink send: " + common::errnoText(errno);
    return false;
  }
  const auto collect = [](const nlmsghdr* answer, void* data) -> int {
    auto* out = static_cast<Reply*>(data);
    if (out == nullptr) return MNL_CB_OK;
    const auto parse = [](const nlattr* attribute, void* context) -> int {
      auto* r = static_cast<Reply*>(context);
      switch (mnl_attr_get_type(attribute)) {
        case IPSET_ATTR_TYPENAME:
          if (mnl_attr_validate(attribute, MNL_TYPE_NUL_STRING) >= 0)
            r->header.typeName = mnl_attr_get_str(attribute);
          break;
        case IPSET_ATTR_FAMILY:
          if (mnl_attr_validate(attribute, MNL_TYPE_U8) >= 0) {
            r->header.family =
                mnl_attr_get_u8(attribute) == NFPROTO_IPV6 ? common::IpFamily::V6 : common::IpFamily::V4;
          }
          break;
        case IPSET_ATTR_REVISION:
          if (mnl_attr_validate(attribute, MNL_TYPE_U8) >= 0) {
            r->revision = mnl_attr_get_u8(attribute);
            r->gotRevision = true;
          }
          break;
        case IPSET_ATTR_DATA: {
          // A list header's set data (ip_set_hash_gen.h mtype_head).
          const auto readData = [](const nlattr* inner, void* context2) -> int {
            if (mnl_attr_get_type(inner) == IPSET_ATTR_ELEMENTS &&
                mnl_attr_validate(inner, MNL_TYPE_U32) >= 0) {
              static_cast<Reply*>(context2)->elements = ntohl(mnl_attr_get_u32(inner));
            }
            return MNL_CB_OK;
          };
          if (mnl_attr_validate(attribute, MNL_TYPE_NESTED) >= 0)
            mnl_attr_parse_nested(attribute, readData, r);
          break;
        }
        default:
          break;
      }
      return MNL_CB_OK;
    };
    return mnl_attr_parse(answer, sizeof(nfgenmsg), parse, out) < 0 ? MNL_CB_ERROR : MNL_CB_OK;
  };
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(socket_.get(), receive_.data(), receive_.size());
    if (n < 0) {
      if (code != nullptr) *code = errno;
      error = "netlink receive: " + common::errnoText(errno);
      return false;
    }
    const int result = mnl_cb_run(receive_.data(), static_cast<size_t>(n), seq, portId_, collect, reply);
    if (result == MNL_CB_STOP) return true;  // the ACK
    if (result < 0) {
      const int failure = errno;
      if (code != nullptr) *code = failure;
      error = ipsetErrorText(failure);
      return false;
    }
  }
}

bool IpSetClient::header(std::string_view name, IpSetHeader& out, std::string& error) {
  if (!validName(name)) {
    error = "bad set name";
    return false;
  }
  std::vector<uint8_t> message(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* h = putHeader(message.data(), IPSET_CMD_HEADER, 0, nextSeq(), NFPROTO_UNSPEC);
  mnl_attr_put_strz(h, IPSET_ATTR_SETNAME, std::string(name).c_str());
  Reply reply;
  if (!request(message, &reply, error)) return false;
  out = reply.header;
  return true;
}

bool IpSetClient::size(std::string_view name, uint64_t& entries, std::string& error) {
  if (!validName(name)) {
    error = "bad set name";
    return false;
  }
  std::vector<uint8_t> message(MNL_SOCKET_BUFFER_SIZE);
  // A dump of that one set's header only (`ipset list -terse NAME`).
  nlmsghdr* h = putHeader(message.data(), IPSET_CMD_LIST, NLM_F_DUMP, nextSeq(), NFPROTO_UNSPEC);
  mnl_attr_put_strz(h, IPSET_ATTR_SETNAME, std::string(name).c_str());
  mnl_attr_put_u32(h, IPSET_ATTR_FLAGS | NLA_F_NET_BYTEORDER, htonl(IPSET_FLAG_LIST_HEADER));
  Reply reply;
  if (!request(message, &reply, error)) return false;
  if (!reply.elements) {
    error = "the kernel did not report the number of entries";
    return false;
  }
  entries = *reply.elements;
  return true;
}

bool IpSetClient::create(std::string_view name, common::IpFamily family, uint32_t maxElements,
                         std::string& error) {
  if (!validName(name)) {
    error = "bad set name";
    return false;
  }
  std::vector<uint8_t> message(MNL_SOCKET_BUFFER_SIZE);
  // The newest revision of the type this kernel has (as `ipset` asks).
  nlmsghdr* h = putHeader(message.data(), IPSET_CMD_TYPE, 0, nextSeq(), nfproto(family));
  mnl_attr_put_strz(h, IPSET_ATTR_TYPENAME, kTypeName);
  mnl_attr_put_u8(h, IPSET_ATTR_FAMILY, nfproto(family));
  Reply type;
  if (!request(message, &type, error)) return false;
  if (!type.gotRevision) {
    error = std::string("kernel did not name a revision of ") + kTypeName;
    return false;
  }

  const std::string setName(name);
  h = putHeader(message.data(), IPSET_CMD_CREATE, 0, nextSeq(), nfproto(family));  // no EXCL: reuse
  mnl_attr_put_strz(h, IPSET_ATTR_SETNAME, setName.c_str());
  mnl_attr_put_strz(h, IPSET_ATTR_TYPENAME, kTypeName);
  mnl_attr_put_u8(h, IPSET_ATTR_REVISION, type.revision);
  mnl_attr_put_u8(h, IPSET_ATTR_FAMILY, nfproto(family));
  nlattr* data = mnl_attr_nest_start(h, IPSET_ATTR_DATA);
  const uint32_t timeout = htonl(kDefaultTimeout);
  mnl_attr_put(h, IPSET_ATTR_TIMEOUT | NLA_F_NET_BYTEORDER, sizeof timeout, &timeout);
  const uint32_t maxelem = htonl(std::max<uint32_t>(maxElements, 64));
  mnl_attr_put(h, IPSET_ATTR_MAXELEM | NLA_F_NET_BYTEORDER, sizeof maxelem, &maxelem);
  mnl_attr_nest_end(h, data);
  std::string createError;
  if (request(message, nullptr, createError)) return true;
  // Exists with other parameters (an older egressd's maxelem): reuse it if
  // it has the right type and family; it is flushed before use.
  IpSetHeader existing;
  if (!header(name, existing, error)) {
    error = createError;
    return false;
  }
  if (existing.typeName != kTypeName || existing.family != family) {
    error = "a set of that name exists with type " + existing.typeName;
    return false;
  }
  return true;
}

bool IpSetClient::flush(std::string_view name, std::string& error) {
  if (!validName(name)) {
    error = "bad set name";
    return false;
  }
  std::vector<uint8_t> message(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* h = putHeader(message.data(), IPSET_CMD_FLUSH, 0, nextSeq(), NFPROTO_UNSPEC);
  mnl_attr_put_strz(h, IPSET_ATTR_SETNAME, std::string(name).c_str());
  return request(message, nullptr, error);
}

bool IpSetClient::destroy(std::string_view name, std::string& error) {
  if (!validName(name)) {
    error = "bad set name";
    return false;
  }
  std::vector<uint8_t> message(MNL_SOCKET_BUFFER_SIZE);
  for (int attempt = 0;; ++attempt) {
    nlmsghdr* h = putHeader(message.data(), IPSET_CMD_DESTROY, 0, nextSeq(), NFPROTO_UNSPEC);
    mnl_attr_put_strz(h, IPSET_ATTR_SETNAME, std::string(name).c_str());
    int code = 0;
    if (request(message, nullptr, error, &code)) return true;
    // No such set, or no ip_set in this kernel at all: nothing to remove.
    if (code == ENOENT || code == EOPNOTSUPP || code == EPROTONOSUPPORT) return true;
    // iptables-nft drops a deleted rule's set reference after the commit,
    // from a work queue: give it a moment.
    if (code != IPSET_ERR_REFERENCED || attempt >= 40) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void IpSetClient::sendBatch(size_t bytes, size_t count, IpSetAddResult& result) noexcept {
  if (bytes == 0) return;
  if (mnl_socket_sendto(socket_.get(), batch_.data(), bytes) < 0) {
    result.failed += count;
    return;
  }
  result.sent += count;
  // The kernel handled every message inside sendmsg; only failures were
  // answered. Drain them without waiting.
  for (;;) {
    const ssize_t n = recv(mnl_socket_get_fd(socket_.get()), receive_.data(), receive_.size(), MSG_DONTWAIT);
    if (n <= 0) {
      // ENOBUFS: answers were lost, so failures are unknown; counted once.
      if (n < 0 && errno == ENOBUFS) ++result.failed;
      return;
    }
    int remaining = static_cast<int>(n);
    for (auto* answer = reinterpret_cast<const nlmsghdr*>(receive_.data()); mnl_nlmsg_ok(answer, remaining);
         answer = mnl_nlmsg_next(answer, &remaining)) {
      if (answer->nlmsg_type != NLMSG_ERROR) continue;
      const auto* failure = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(answer));
      if (failure->error == 0) continue;
      if (-failure->error == IPSET_ERR_HASH_FULL) {
        ++result.full;
      } else {
        ++result.failed;
      }
    }
  }
}

IpSetAddResult IpSetClient::add(std::string_view set4, std::string_view set6,
                                std::span<const SetEntry> entries) noexcept {
  IpSetAddResult result;
  if (!socket_) {
    result.failed = entries.size();
    return result;
  }
  size_t bytes = 0;
  size_t count = 0;
  for (const SetEntry& entry : entries) {
    if (batch_.size() - bytes < kAddMessageMax) {
      sendBatch(bytes, count, result);
      bytes = count = 0;
    }
    const std::string_view set = entry.ip.family == common::IpFamily::V4 ? set4 : set6;
    const size_t length = encodeAdd(std::span<uint8_t>(batch_).subspan(bytes), set, entry, nextSeq());
    if (length == 0) {
      ++result.failed;
      continue;
    }
    bytes += length;
    ++count;
  }
  sendBatch(bytes, count, result);
  return result;
}

}  // namespace nfq
