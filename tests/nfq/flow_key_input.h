// Reads "CLIENT CPORT SERVER SPORT" (a TCP connection as the client opened
// it) from a test tool's command line on stdin; unparsable addresses are
// left zero, so the lookup finds nothing.
#pragma once

#include <istream>
#include <string>

#include "common/ip_address.h"
#include "nfq/flow_table.h"

namespace nfqtest {

inline nfq::FlowKey readFlowKey(std::istream& in) {
  std::string client, server;
  unsigned clientPort = 0, serverPort = 0;
  in >> client >> clientPort >> server >> serverPort;
  nfq::FlowKey key;
  key.src = common::parseIpAddress(client).value_or(common::IpAddress{});
  key.dst = common::parseIpAddress(server).value_or(common::IpAddress{});
  key.srcPort = static_cast<uint16_t>(clientPort);
  key.dstPort = static_cast<uint16_t>(serverPort);
  key.protocol = 6;
  return key;
}

}  // namespace nfqtest
