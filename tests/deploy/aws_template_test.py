#!/usr/bin/env python3
"""The promise of deploy/aws/egress-gateway.yaml, checked on the template.

The template's promise (deploy/aws/README.md): no egress rule it gives the
Kubernetes nodes' security group reaches outside the VPC. Every
AWS::EC2::SecurityGroupEgress whose group is not one the template creates
itself is taken to be the nodes' (fail closed), and each must be either
  - all protocols or some ports to the VpcCidr parameter (!Ref VpcCidr), or
  - DNS/proxy ports to the gateways' security group;
0.0.0.0/0, ::/0, any IPv6 range, prefix lists (public AWS ranges),
literal or computed CIDRs, other groups and conditional values are refused.
VpcCidr's AllowedPattern must refuse ranges larger than a VPC can be, and
the other groups the template creates (the load balancer's) must state
their egress inline (replacing the default allow-all) within the VPC or
toward the template's groups.

Also: the rules the nodes need exist (the promise is not kept by having no
rules), the gateway's egressd.toml in the user data passes
`egressd --check-config` (argument 2: egressd binary), and the user data is
valid bash. Each check runs on mutated copies of the template too, which
must fail: the checks can see a broken promise.

usage: aws_template_test.py TEMPLATE [EGRESSD]
"""
import copy
import re
import subprocess
import sys
import tempfile
import textwrap

import yaml

VPC_PARAM = "VpcCidr"
GATEWAY_GROUP = "GatewaySecurityGroup"
# What the nodes must reach on the gateways (protocol, port).
NEEDED_GATEWAY_PORTS = {("udp", 53), ("tcp", 53), ("tcp", 3128)}


# CloudFormation's short forms (!Ref, !Sub, !GetAtt ...) as their long
# forms, so the checks see one shape.
class CfnLoader(yaml.SafeLoader):
    pass


def _construct_tag(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + tag_suffix: value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 (SafeLoader subclass)


def created_groups(template):
    return {name for name, r in template.get("Resources", {}).items()
            if r.get("Type") == "AWS::EC2::SecurityGroup"}


def refers_to(value, names):
    """The logical name a !Ref or !GetAtt X.GroupId value points at, if in names."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in names:
            return value["Ref"]
        if set(value) == {"Fn::GetAtt"} and value["Fn::GetAtt"][0] in names and \
                value["Fn::GetAtt"][1] == "GroupId":
            return value["Fn::GetAtt"][0]
    return None


def nodes_egress_rules(template):
    """(logical name, properties) of every egress rule on a group the template does not create."""
    own = created_groups(template)
    rules = []
    for name, r in template.get("Resources", {}).items():
        if r.get("Type") == "AWS::EC2::SecurityGroupEgress":
            props = r.get("Properties", {})
            if refers_to(props.get("GroupId"), own) is None:
                rules.append((name, props))
    return rules


def problems_of_rule(name, props):
    out = []
    text = yaml.safe_dump(props)
    if "0.0.0.0/0" in text or "::/0" in text:
        out.append(f"{name}: reaches the whole internet ({props})")
    for key in ("CidrIpv6", "DestinationPrefixListId"):
        if key in props:
            out.append(f"{name}: {key} {props[key]} is outside the VPC")
    cidr = props.get("CidrIp")
    group = props.get("DestinationSecurityGroupId")
    if cidr is not None and group is not None:
        out.append(f"{name}: both CidrIp and DestinationSecurityGroupId")
    elif cidr is not None:
        if cidr != {"Ref": VPC_PARAM}:
            out.append(f"{name}: CidrIp {cidr} is not !Ref {VPC_PARAM} (cannot prove it is inside the VPC)")
    elif group is not None:
        if refers_to(group, {GATEWAY_GROUP}) is None:
            out.append(f"{name}: DestinationSecurityGroupId {group} is not the gateways' group")
        else:
            proto = str(props.get("IpProtocol"))
            ports = (props.get("FromPort"), props.get("ToPort"))
            if proto not in ("tcp", "udp") or ports[0] != ports[1] or (proto, ports[0]) not in NEEDED_GATEWAY_PORTS:
                out.append(f"{name}: to the gateways on {proto} {ports}, want only DNS (53) and the proxy (3128)")
    else:
        out.append(f"{name}: no CidrIp or DestinationSecurityGroupId this test understands ({props})")
    return out


def vpc_cidr_pattern_problems(template):
    param = template.get("Parameters", {}).get(VPC_PARAM)
    if param is None:
        return [f"no parameter {VPC_PARAM}"]
    pattern = param.get("AllowedPattern")
    if not pattern:
        return [f"{VPC_PARAM} has no AllowedPattern: any range, 0.0.0.0/0 included, would be accepted"]
    out = []
    for bad in ("0.0.0.0/0", "0.0.0.0/1", "10.0.0.0/8", "10.0.0.0/15", "::/0", "10.0.0.0/16 ", "x10.0.0.0/16"):
        if re.fullmatch(pattern, bad):
            out.append(f"{VPC_PARAM}'s AllowedPattern accepts {bad!r}")
    for good in ("10.0.0.0/16", "172.31.0.0/16", "192.168.10.0/24", "10.1.0.0/20"):
        if not re.fullmatch(pattern, good):
            out.append(f"{VPC_PARAM}'s AllowedPattern refuses {good!r}")
    return out


def promise_problems(template):
    out = vpc_cidr_pattern_problems(template)
    rules = nodes_egress_rules(template)
    for name, props in rules:
        out.extend(problems_of_rule(name, props))
    # Not vacuous: the rules the nodes need are there.
    if not any(p.get("CidrIp") == {"Ref": VPC_PARAM} for _, p in rules):
        out.append(f"no egress rule of the nodes' group to !Ref {VPC_PARAM}")
    to_gateways = {(str(p.get("IpProtocol")), p.get("FromPort")) for _, p in rules
                   if refers_to(p.get("DestinationSecurityGroupId"), {GATEWAY_GROUP})}
    for need in sorted(NEEDED_GATEWAY_PORTS - to_gateways):
        out.append(f"no egress rule of the nodes' group to the gateways on {need[0]} {need[1]}")
    # The gateways' group itself: ingress only from the nodes' group or the
    # load balancer's, on DNS, the proxy and (load balancer) the health port.
    own = created_groups(template)
    for name, r in template["Resources"].items():
        if r.get("Type") == "AWS::EC2::SecurityGroupIngress" and \
                refers_to(r["Properties"].get("GroupId"), {GATEWAY_GROUP}):
            p = r["Properties"]
            src = p.get("SourceSecurityGroupId")
            if not (src == {"Ref": "NodeSecurityGroupId"} or refers_to(src, own - {GATEWAY_GROUP})):
                out.append(f"{name}: gateway ingress from {p} (only the nodes' or the load balancer's group)")
    # Every other group the template creates (the load balancer's) states
    # its egress inline, which replaces a new group's default allow-all,
    # and reaches no further than the VPC or a group of the template.
    for name in sorted(own - {GATEWAY_GROUP}):
        egress = template["Resources"][name].get("Properties", {}).get("SecurityGroupEgress")
        if not egress:
            out.append(f"{name}: no inline SecurityGroupEgress, so it keeps the default allow-all egress")
            continue
        for rule in egress:
            if not (rule.get("CidrIp") == {"Ref": VPC_PARAM} or refers_to(rule.get("DestinationSecurityGroupId"), own)):
                out.append(f"{name}: egress {rule} reaches beyond the VPC and the template's groups")
    if template["Resources"].get(GATEWAY_GROUP, {}).get("Properties", {}).get("SecurityGroupIngress"):
        out.append(f"{GATEWAY_GROUP}: inline ingress rules (not checked; use SecurityGroupIngress resources)")
    return out


def user_data(template):
    sub = template["Resources"]["GatewayLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    return sub[0] if isinstance(sub, list) else sub


def substitute(script):
    values = {"AWS::Region": "eu-west-1", "AWS::StackName": "egress-test", "Resolver": "10.0.0.2",
              "PackageUrl": "s3://bucket/egressd.deb", "PackageSha256": "0" * 64,
              "KubeconfigParameterName": "/egressd/kubeconfig"}
    out = re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: values[m.group(1)], script)
    return out.replace("${!", "${")


def gateway_toml(script):
    m = re.search(r"<<'EGRESSD_TOML'\n(.*?)\nEGRESSD_TOML\n", script, re.S)
    return m.group(1) if m else None


def user_data_problems(template, egressd):
    out = []
    try:
        script = substitute(user_data(template))
    except (KeyError, TypeError) as e:
        return [f"user data: cannot substitute {e}"]
    r = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True, check=False)
    if r.returncode != 0:
        out.append(f"user data is not valid bash: {r.stderr.strip()}")
    toml = gateway_toml(script)
    if toml is None:
        return out + ["user data writes no egressd.toml (heredoc EGRESSD_TOML)"]
    if 'upstreams = ["10.0.0.2:53"]' not in toml:
        out.append("egressd.toml: dns.upstreams is not the VPC resolver (VPC base + 2)")
    if egressd:
        with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
            f.write(toml)
            f.flush()
            r = subprocess.run([egressd, "--check-config", "--config", f.name],
                               text=True, capture_output=True, check=False)
            if r.returncode != 0 or "configuration valid" not in r.stdout + r.stderr:
                out.append(f"egressd --check-config on the gateway's egressd.toml: {r.stdout}{r.stderr}")
    return out


def resolver(template):
    """The Resolver expression evaluated for one VPC range (a check that +2 is computed right)."""
    expr = user_data(template) and template["Resources"]["GatewayLaunchTemplate"]["Properties"][
        "LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"][1]["Resolver"]

    def ev(v, cidr):
        if isinstance(v, str):
            return v
        if isinstance(v, list):
            return [ev(x, cidr) for x in v]
        (fn, arg), = v.items()
        if fn == "Ref":
            return cidr if arg == VPC_PARAM else None
        if fn == "Fn::Split":
            return ev(arg[1], cidr).split(arg[0])
        if fn == "Fn::Select":
            return ev(arg[1], cidr)[int(arg[0])]
        if fn == "Fn::Join":
            return arg[0].join(ev(arg[1], cidr))
        raise ValueError(fn)
    return ev(expr, "172.31.16.0/20")


# Broken copies: each must be caught, with a message naming the cause.
def mutations(template):
    def add_rule(props):
        t = copy.deepcopy(template)
        t["Resources"]["Leak"] = {"Type": "AWS::EC2::SecurityGroupEgress",
                                  "Properties": dict({"GroupId": {"Ref": "NodeSecurityGroupId"}}, **props)}
        return t

    yield "0.0.0.0/0 egress", "whole internet", add_rule({"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"})
    yield "::/0 egress", "whole internet", add_rule({"IpProtocol": "-1", "CidrIpv6": "::/0"})
    yield "HTTPS to the world", "whole internet", add_rule(
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"})
    yield "a public /8", "cannot prove", add_rule({"IpProtocol": "-1", "CidrIp": "52.0.0.0/8"})
    yield "S3 prefix list", "outside the VPC", add_rule(
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "DestinationPrefixListId": "pl-6da54004"})
    yield "conditional CIDR", "cannot prove", add_rule(
        {"IpProtocol": "-1", "CidrIp": {"Fn::If": ["X", {"Ref": VPC_PARAM}, "0.0.0.0/0"]}})
    yield "another group", "not the gateways' group", add_rule(
        {"IpProtocol": "-1", "DestinationSecurityGroupId": {"Ref": "LoadBalancerSecurityGroup"}})
    yield "all ports to the gateways", "want only DNS", add_rule(
        {"IpProtocol": "-1", "DestinationSecurityGroupId": {"Ref": GATEWAY_GROUP}})
    t = copy.deepcopy(template)
    t["Resources"]["LeakOnOtherGroup"] = {"Type": "AWS::EC2::SecurityGroupEgress", "Properties": {
        "GroupId": "sg-0123456789abcdef0", "IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}}
    yield "a literal group id", "whole internet", t
    t = copy.deepcopy(template)
    t["Parameters"][VPC_PARAM]["AllowedPattern"] = r"^[0-9./]+$"
    yield "VpcCidr accepting 0.0.0.0/0", "accepts '0.0.0.0/0'", t
    t = copy.deepcopy(template)
    del t["Resources"]["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupEgress"]
    yield "load balancer group with the default egress", "keeps the default allow-all", t
    t = copy.deepcopy(template)
    t["Resources"]["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupEgress"].append(
        {"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"})
    yield "load balancer group open to the world", "reaches beyond the VPC", t
    t = copy.deepcopy(template)
    del t["Resources"]["NodesEgressVpc"]
    yield "no VPC rule", "no egress rule of the nodes' group to !Ref", t
    t = copy.deepcopy(template)
    t["Resources"]["GatewayIngressProxyFromNodes"]["Properties"]["SourceSecurityGroupId"] = None
    t["Resources"]["GatewayIngressProxyFromNodes"]["Properties"]["CidrIp"] = "0.0.0.0/0"
    yield "gateway ingress from anywhere", "gateway ingress from", t


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    template = load(sys.argv[1])
    egressd = sys.argv[2] if len(sys.argv) == 3 else None
    failed = 0

    def check(ok, what):
        nonlocal failed
        print(("ok   " if ok else "FAIL ") + what)
        failed += 0 if ok else 1

    rules = nodes_egress_rules(template)
    check(len(rules) >= 4, f"the nodes' group gets {len(rules)} egress rules: {', '.join(n for n, _ in rules)}")
    problems = promise_problems(template)
    check(not problems, "no egress rule of the nodes' group reaches outside the VPC" +
          "".join("\n     " + p for p in problems))
    for what, want, broken in mutations(template):
        got = promise_problems(broken)
        check(any(want in p for p in got), f"mutation caught: {what}: {got}")
    got = resolver(template)
    check(got == "172.31.16.2", f"the VPC resolver of 172.31.16.0/20 is {got} (want 172.31.16.2)")
    problems = user_data_problems(template, egressd)
    check(not problems, "user data: valid bash, egressd.toml " +
          ("passes egressd --check-config" if egressd else "present (no egressd binary given)") +
          "".join("\n     " + p for p in problems))
    broken = copy.deepcopy(template)
    sub = broken["Resources"]["GatewayLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    sub[0] = sub[0].replace('listen = ["0.0.0.0:53"]', 'listen = "0.0.0.0:53"')
    got = user_data_problems(broken, egressd)
    check(bool(got) if egressd else True, f"mutation caught: dns.listen as a string: {got}")
    print(f"deploy.aws_template: {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
