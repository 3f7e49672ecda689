#!/usr/bin/env python3
"""The egressd Debian package's files, run on a simulated gateway.

e2e.dmz starts each gateway's egressd and egress-controller from an
unpacked .deb (`dpkg-deb -x` into ROOT), the way systemd would start the
package's units on a gateway host, so that a change to the shipped
configuration or to the units is what the simulation runs. No systemd runs
here: this script reads the units and does the few things of theirs the
programs depend on. Every path the package owns is moved under the
gateway's own folder GW (one host per gateway):

  /usr/...            -> ROOT/usr/...          (the programs, shared)
  /etc/egressd/...    -> GW/etc/egressd/...    (config, controller.env, kubeconfig)
  /var/lib/egressd/...-> GW/var/lib/egressd/...(StateDirectory: rules.d, pods)
  /run/egressd/...    -> GW/run/egressd/...    (RuntimeDirectory: control socket)
  %d (credentials)    -> GW/credentials        (LoadCredential copies)
  %H (host name)      -> the gateway's name

  package.py config ROOT GW [--set TABLE.KEY=TOML_VALUE]...
      GW/etc/egressd/{egressd.toml,controller.env} from ROOT's, paths moved,
      the --set keys replaced (or added to their table); fails when a key
      it sets is missing from a table that does not exist, or when the
      result is no longer TOML.
  package.py prepare ROOT GW UNIT
      what systemd does before starting UNIT: its StateDirectory= and
      RuntimeDirectory= folders, LoadCredential= copies; exits 3 when a
      ConditionPathExists= does not hold (systemd would skip the unit).
  package.py argv ROOT GW UNIT KEY HOST
      the command line of UNIT's KEY (ExecStart, ExecStartPre), one word
      per line, with EnvironmentFile= variables expanded as systemd does
      ($VAR: split at white space; ${VAR}: one word).

Unit syntax this does not understand (a prefix such as `-` or `+`, a
specifier other than %d %H %%, several lines of one key) is an error, not
a guess: the test must then learn it.
"""
import os
import re
import shlex
import shutil
import sys
import tomllib

UNITS = "lib/systemd/system"


def die(message):
    sys.exit(f"dmz/package.py: {message}")


def move(text, root, gw):
    """Every package path in TEXT, moved to where this gateway keeps it."""
    text = re.sub(r"(?<![\w/.])/usr/", root + "/usr/", text)
    for top in ("/etc/egressd", "/var/lib/egressd", "/run/egressd"):
        text = re.sub(r"(?<![\w/.])" + re.escape(top) + r"(?=[/\"'\s]|$)", gw + top, text)
    return text


def read_unit(root, unit):
    path = os.path.join(root, UNITS, unit)
    values = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[":
                continue
            if line.endswith("\\"):
                die(f"{path}: continued lines are not supported: {line}")
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return path, values


def one(values, path, key):
    got = values.get(key, [])
    if len(got) != 1:
        die(f"{path}: want exactly one {key}=, found {len(got)}")
    return got[0]


def env_file(file):
    """KEY=VALUE lines of a systemd EnvironmentFile (shell-like quoting)."""
    env = {}
    with open(file, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            key, _, value = line.partition("=")
            words = shlex.split(value)
            env[key.strip()] = " ".join(words)
    return env


def specifiers(word, gw, host, path):
    def sub(m):
        c = m.group(1)
        if c == "d":
            return os.path.join(gw, "credentials")
        if c == "H":
            return host
        if c == "%":
            return "%"
        die(f"{path}: specifier %{c} is not simulated")

    return re.sub(r"%(.)", sub, word)


def cmd_config(root, gw, sets):
    etc = os.path.join(gw, "etc/egressd")
    os.makedirs(etc, exist_ok=True)
    for name in ("egressd.toml", "controller.env"):
        with open(os.path.join(root, "etc/egressd", name), encoding="utf-8") as f:
            text = move(f.read(), root, gw)
        if name == "egressd.toml":
            text = set_keys(text, sets)
            try:
                tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                die(f"{name} after the gateway's changes is not TOML: {e}")
        with open(os.path.join(etc, name), "w", encoding="utf-8") as f:
            f.write(text)
    os.makedirs(os.path.join(etc, "system.d"), exist_ok=True)


def set_keys(text, sets):
    lines = text.split("\n")
    for item in sets:
        dotted, _, value = item.partition("=")
        table, _, key = dotted.rpartition(".")
        header = f"[{table}]" if table else None
        start = 0
        if header:
            try:
                start = next(i for i, l in enumerate(lines) if l.strip() == header) + 1
            except StopIteration:
                die(f"the package's egressd.toml has no {header} table for {dotted}")
        end = next((i for i in range(start, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
        new = f"{key} = {value}"
        at = next((i for i in range(start, end) if re.match(rf"\s*{re.escape(key)}\s*=", lines[i])), None)
        if at is None:
            lines.insert(start, new)
        else:
            lines[at] = new
    return "\n".join(lines)


def cmd_prepare(root, gw, unit):
    path, values = read_unit(root, unit)
    for cond in values.get("ConditionPathExists", []):
        if not os.path.exists(move(cond, root, gw)):
            print(f"{unit}: ConditionPathExists={cond} does not hold: skipped", file=sys.stderr)
            sys.exit(3)
    for key, top in (("StateDirectory", "/var/lib/"), ("RuntimeDirectory", "/run/")):
        for value in values.get(key, []):
            for d in value.split():
                os.makedirs(move(top + d, root, gw), exist_ok=True)
    for value in values.get("LoadCredential", []):
        name, _, source = value.partition(":")
        creds = os.path.join(gw, "credentials")
        os.makedirs(creds, mode=0o700, exist_ok=True)
        shutil.copyfile(move(source, root, gw), os.path.join(creds, name))
        os.chmod(os.path.join(creds, name), 0o400)


def cmd_argv(root, gw, unit, key, host):
    path, values = read_unit(root, unit)
    line = one(values, path, key)
    if line[:1] in "-@+!:|":
        die(f"{path}: {key}= prefix {line[0]} is not simulated")
    env = {}
    for f in values.get("EnvironmentFile", []):
        env.update(env_file(move(f.lstrip("-"), root, gw)))
    out = []
    for word in shlex.split(line):
        m = re.fullmatch(r"\$(\w+)|\$\{(\w+)\}", word)
        if m and m.group(1):
            out.extend(env.get(m.group(1), "").split())
        elif m:
            out.append(env.get(m.group(2), ""))
        else:
            if "$" in word:
                die(f"{path}: a variable inside a word is not simulated: {word}")
            out.append(move(specifiers(word, gw, host, path), root, gw))
    print("\n".join(out))


def main(argv):
    if len(argv) >= 3 and argv[0] == "config":
        sets = []
        rest = argv[3:]
        while rest:
            if rest[0] != "--set" or len(rest) < 2:
                die(f"config: unexpected {rest[0]}")
            sets.append(rest[1])
            rest = rest[2:]
        cmd_config(argv[1], argv[2], sets)
    elif len(argv) == 4 and argv[0] == "prepare":
        cmd_prepare(*argv[1:])
    elif len(argv) == 6 and argv[0] == "argv":
        cmd_argv(*argv[1:])
    else:
        die("usage: see the top of this file")


if __name__ == "__main__":
    main(sys.argv[1:])
