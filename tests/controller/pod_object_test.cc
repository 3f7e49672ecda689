// Pods from the API server reduced to attribution records, the workload
// naming from ownerReferences alone, and the index's choice when two pods
// claim one address.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "controller/pod_index.h"
#include "controller/pod_object.h"

using controller::PodIndex;
using controller::PodObject;
using nlohmann::json;

namespace {

json owner(const std::string& kind, const std::string& name, bool isController = true) {
  return {{"apiVersion", "apps/v1"},
          {"kind", kind},
          {"name", name},
          {"uid", "u-" + name},
          {"controller", isController}};
}

json podJson(const std::string& ns, const std::string& name, const std::string& ip,
             json owners = json::array(), json labels = json::object(),
             const std::string& phase = "Running") {
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"namespace", ns},
                {"name", name},
                {"uid", "uid-" + ns + "-" + name},
                {"labels", labels},
                {"ownerReferences", owners}}},
              {"spec", {{"serviceAccountName", "sa-" + name}, {"nodeName", "node-1"}}},
              {"status", {{"phase", phase}}}};
  if (!ip.empty()) {
    pod["status"]["podIP"] = ip;
    pod["status"]["podIPs"] = json::array({{{"ip", ip}}});
  }
  return pod;
}

PodObject pod(const json& object) {
  std::string error;
  auto parsed = controller::podFromJson(object, error);
  INFO(error);
  REQUIRE(parsed.has_value());
  return *parsed;
}

std::string workload(json owners, json labels, const std::string& name = "p") {
  return controller::workloadOf({{"ownerReferences", owners}, {"labels", labels}}, name);
}

}  // namespace

TEST_CASE("pod object: workload from the controller owner and naming conventions") {
  const json hash = {{"pod-template-hash", "7d9c6b5f4"}};
  CHECK(workload({owner("ReplicaSet", "web-7d9c6b5f4")}, hash) == "Deployment/web");
  CHECK(workload({owner("ReplicaSet", "my-api-v2-7d9c6b5f4")}, hash) == "Deployment/my-api-v2");
  // Without the Deployment's hash label or with another hash: a ReplicaSet of its own.
  CHECK(workload({owner("ReplicaSet", "web-7d9c6b5f4")}, json::object()) == "ReplicaSet/web-7d9c6b5f4");
  CHECK(workload({owner("ReplicaSet", "web-abc")}, hash) == "ReplicaSet/web-abc");
  CHECK(workload({owner("ReplicaSet", "7d9c6b5f4")}, hash) == "ReplicaSet/7d9c6b5f4");
  CHECK(workload({owner("StatefulSet", "db")}, json::object()) == "StatefulSet/db");
  CHECK(workload({owner("DaemonSet", "agent")}, json::object()) == "DaemonSet/agent");
  // A CronJob's Job is named <cronjob>-<scheduled minute since the epoch>.
  CHECK(workload({owner("Job", "nightly-29430000")}, json::object()) == "CronJob/nightly");
  CHECK(workload({owner("Job", "migrate")}, json::object()) == "Job/migrate");
  CHECK(workload({owner("Job", "migrate-2")}, json::object()) == "Job/migrate-2");
  CHECK(workload({owner("Job", "batch-12345678")}, json::object()) == "Job/batch-12345678");  // 1993
  // Not a controller owner, no owner, a static pod's mirror: the pod itself.
  CHECK(workload({owner("StatefulSet", "db", false)}, json::object(), "db-0") == "Pod/db-0");
  CHECK(workload(json::array(), json::object(), "bare") == "Pod/bare");
  CHECK(workload({owner("Node", "node-1")}, json::object(), "etcd-node-1") == "Pod/etcd-node-1");
  CHECK(workload({owner("Rollout", "canary")}, json::object()) == "Rollout/canary");
  CHECK(workload({owner(std::string(300, 'K'), "x")}, json::object(), "p") == "Pod/p");
}

TEST_CASE("pod object: fields, addresses, host network, phases") {
  const PodObject web = pod(podJson("team-a", "web-1", "10.244.1.7", {owner("StatefulSet", "web")}));
  CHECK(web.key() == "team-a/web-1");
  CHECK(web.workload == "StatefulSet/web");
  CHECK(web.serviceAccount == "sa-web-1");
  REQUIRE(web.ips.size() == 1);
  CHECK(web.ips[0] == *common::parseIpAddress("10.244.1.7"));
  CHECK(web.holdsAddresses());

  json dual = podJson("team-a", "dual", "10.244.1.8");
  dual["status"]["podIPs"].push_back({{"ip", "fd00::8"}});
  dual["status"]["podIPs"].push_back({{"ip", "not-an-ip"}});
  CHECK(pod(dual).ips.size() == 2);

  CHECK_FALSE(pod(podJson("a", "pending", "")).holdsAddresses());
  CHECK_FALSE(
      pod(podJson("a", "done", "10.0.0.1", json::array(), json::object(), "Succeeded")).holdsAddresses());
  CHECK_FALSE(
      pod(podJson("a", "failed", "10.0.0.1", json::array(), json::object(), "Failed")).holdsAddresses());
  json host = podJson("kube-system", "egressd-abc", "192.168.1.10");
  host["spec"]["hostNetwork"] = true;
  CHECK_FALSE(pod(host).holdsAddresses());
  json deleting = podJson("a", "old", "10.0.0.1");
  deleting["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z";
  CHECK(pod(deleting).deleting);

  std::string error;
  CHECK_FALSE(controller::podFromJson(json::array(), error).has_value());
  CHECK_FALSE(controller::podFromJson(podJson("Bad_NS", "x", "10.0.0.1"), error).has_value());
  CHECK(error.find("Bad_NS") != std::string::npos);
  json wrongTypes = podJson("a", "b", "10.0.0.1");
  wrongTypes["spec"] = "x";
  wrongTypes["status"]["podIPs"] = 5;
  CHECK(controller::podFromJson(wrongTypes, error).has_value());
}

TEST_CASE("pod index: records sorted, one pod per address, the newer claim wins") {
  PodIndex index;
  index.upsert(pod(podJson("team-a", "web-1", "10.244.1.7")));
  index.upsert(pod(podJson("team-b", "db-0", "10.244.1.2")));
  index.upsert(pod(podJson("team-b", "pending", "")));
  auto records = index.records();
  REQUIRE(records.size() == 2);
  CHECK(records[0].pod == "db-0");  // 10.244.1.2 < 10.244.1.7
  CHECK(records[1].pod == "web-1");

  // The address of web-1 given to new-1 before web-1's DELETED arrives:
  // the later claim wins at once, and the delete changes nothing.
  index.upsert(pod(podJson("team-c", "new-1", "10.244.1.7")));
  records = index.records();
  REQUIRE(records.size() == 2);
  CHECK(records[1].pod == "new-1");
  // web-1 updated again (a status change) without a new address: its old
  // claim still loses.
  index.upsert(pod(podJson("team-a", "web-1", "10.244.1.7")));
  CHECK(index.records()[1].pod == "new-1");
  index.erase("team-a/web-1");
  CHECK(index.records()[1].pod == "new-1");

  // A pod being deleted loses to one that is not, whatever the order.
  json terminating = podJson("team-b", "db-0", "10.244.1.2");
  terminating["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z";
  index.upsert(pod(podJson("team-d", "next", "10.244.1.2")));
  index.upsert(pod(terminating));
  CHECK(index.records()[0].pod == "next");

  // Finished pods name no address.
  index.upsert(pod(podJson("team-d", "next", "10.244.1.2", json::array(), json::object(), "Succeeded")));
  CHECK(index.records()[0].pod == "db-0");
  index.erase("team-b/db-0");
  CHECK(index.records().size() == 1);
}

TEST_CASE("pod index: after a relist the pod that started last holds a shared address") {
  json older = podJson("a", "old", "10.0.0.9");
  older["status"]["startTime"] = "2026-12-07T00:00:00Z";
  json newer = podJson("b", "new", "10.0.0.9");
  newer["status"]["startTime"] = "2026-12-07T01:00:00Z";
  PodIndex index;
  index.replaceAll({pod(newer), pod(older)});
  REQUIRE(index.records().size() == 1);
  CHECK(index.records()[0].pod == "new");
  index.replaceAll({});
  CHECK(index.records().empty());
  CHECK(index.size() == 0);
}
