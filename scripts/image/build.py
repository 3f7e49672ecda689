#!/usr/bin/env python3
"""Build a reproducible OCI image archive from Debian packages, no engine.

Usage (every option may repeat where it makes sense):

  scripts/image/build.py --tag localhost/NAME:TAG --out build/NAME-image.tar \
      [--packages FILE] [--package PKG] \
      [--add SRC:DEST[:MODE]] [--symlink DEST=TARGET] [--remove PATH] \
      [--mkdir PATH[:MODE]] [--entrypoint JSON] [--cmd JSON] [--env K=V] \
      [--user UID[:GID]] [--workdir DIR] [--label K=V] [--cache DIR]

What it does, in order:
 1. Downloads each named Debian package (`apt-get download PKG=VERSION` at
    apt's candidate version: the release's newest, security fixes included;
    the same .deb files give the same image) into the cache dir (default build/image-cache) and unpacks it with `dpkg-deb -x`
    into a fresh root filesystem: no maintainer scripts run.
 2. Adds the --add files, then follows the NEEDED entries of every ELF file
    in the tree (`readelf -d`): a library the tree does not hold is looked up
    on this machine (`ldconfig -p`), its package found with `dpkg -S`, and
    that package unpacked too, until nothing is missing. So the image holds
    exactly the shared libraries its programs link, and the build fails
    naming the library when this machine does not have it either.
 3. Drops documentation, manuals and locales (keeps each package's
    copyright file), applies --remove/--symlink/--mkdir, writes /etc/passwd,
    /etc/group and one dpkg status file per package under
    /var/lib/dpkg/status.d/ (what image scanners read).
 4. Writes two layers (the Debian part, then the --add files), the config
    and the manifest as an OCI image layout, archived as one tar that
    `ctr images import`, `skopeo copy oci-archive:FILE ...`, `podman load`
    and `kind load image-archive` take. The image is named by the
    io.containerd.image.name annotation (the --tag as given) and
    org.opencontainers.image.ref.name (the tag part).

Reproducible: tar entries sorted, owners numeric, every mtime and the
config's `created` set to SOURCE_DATE_EPOCH (default: the last commit's
time), gzip without name or time. The same packages and files give the same
digest. The archive's manifest digest is printed and written next to it as
OUT.digest; OUT.packages lists every package with its version and sha256.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ARCH = "amd64"
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib", "usr/lib", "lib64", "usr/lib64")
# Not needed at run time; the copyright files stay (usr/share/doc/*/copyright).
PRUNE = ("usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian", "usr/share/bug",
         "usr/share/bash-completion", "usr/share/zsh", "usr/share/fish", "usr/share/pixmaps",
         "usr/share/menu", "usr/share/applications", "usr/share/gdb", "usr/share/perl5",
         "etc/init.d", "etc/default", "etc/cron.d", "etc/cron.daily", "etc/logrotate.d",
         "lib/systemd", "usr/lib/systemd", "etc/systemd")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def die(message: str) -> None:
    print(f"build.py: error: {message}", file=sys.stderr)
    sys.exit(1)


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and result.returncode != 0:
        die(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def human(size: int) -> str:
    return f"{size / 1048576:.1f} MiB" if size >= 1048576 else f"{size / 1024:.0f} KiB"


def tree_size(root: Path) -> int:
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


# --- Debian packages ---------------------------------------------------------

def read_package_list(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


_APT_CACHE_DIR = Path()


def apt_options() -> list[str]:
    # apt's binary package cache in our cache dir: Debian's container images
    # switch it off, and then every apt-cache call parses all lists (seconds).
    return ["-o", "APT::Sandbox::User=root",
            "-o", f"Dir::Cache::pkgcache={_APT_CACHE_DIR / 'pkgcache.bin'}",
            "-o", f"Dir::Cache::srcpkgcache={_APT_CACHE_DIR / 'srcpkgcache.bin'}"]


def candidate_versions(names: list[str]) -> dict[str, str]:
    """apt's candidate of each package: the release's newest version, security fixes included."""
    versions: dict[str, str] = {}
    current = None
    for line in run(["apt-cache"] + apt_options() + ["policy"] + names).stdout.splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith(":"):
            current = line.rstrip()[:-1].split(":", 1)[0]
        elif current and line.strip().startswith("Candidate:") and "(none)" not in line:
            versions[current] = line.split(":", 1)[1].strip()
    for name in names:
        if name not in versions:
            die(f"package {name} is unknown to apt: run `apt-get update`, or check its name")
    return versions


def cached_deb(cache: Path, name: str, version: str) -> Path | None:
    epochless = version.split(":", 1)[-1]
    for arch in (ARCH, "all"):
        for spelled in (epochless, version.replace(":", "%3a")):
            candidate = cache / f"{name}_{spelled}_{arch}.deb"
            if candidate.exists():
                return candidate
    return None


def download(wanted: dict[str, str], cache: Path, retried: bool = False) -> dict[str, Path] | None:
    """The .deb of each name=version, from the cache or one `apt-get download`; None: ask again."""
    missing = [f"{name}={version}" for name, version in sorted(wanted.items())
               if cached_deb(cache, name, version) is None]
    if missing:
        log(f"  apt-get download {' '.join(missing)}")
        # Into a directory of this run's own, then renamed into the cache: two
        # builds sharing the cache never read each other's half-written .deb.
        with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
            result = subprocess.run(["apt-get", "download", "-q"] + apt_options() + missing,
                                    cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for deb in Path(tmp).glob("*.deb"):
                os.replace(deb, cache / deb.name)
        if result.returncode != 0:
            if retried or os.geteuid() != 0:
                die(f"apt-get download failed: {result.stderr.strip()} (run `apt-get update`)")
            # The lists may name versions the archive has replaced since: refresh them once.
            log("  apt-get download failed; apt-get update, then once more")
            run(["apt-get", "update", "-qq"])
            return None
    debs = {}
    for name, version in wanted.items():
        deb = cached_deb(cache, name, version)
        if deb is None:
            die(f"apt-get download {name}={version} wrote no .deb file that I recognise in {cache}")
        debs[name] = deb
    return debs


class Packages:
    """Downloads and unpacks packages into one root filesystem, each once."""

    def __init__(self, root: Path, cache: Path):
        self.root = root
        self.cache = cache
        self.unpacked: dict[str, tuple[str, Path]] = {}
        self.cache.mkdir(parents=True, exist_ok=True)
        global _APT_CACHE_DIR
        _APT_CACHE_DIR = cache

    def add(self, names: list[str], why: dict[str, str] | None = None) -> None:
        bare = sorted({n.split(":", 1)[0] for n in names} - set(self.unpacked))
        if not bare:
            return
        versions = candidate_versions(bare)
        debs = download(versions, self.cache)
        if debs is None:
            versions = candidate_versions(bare)
            debs = download(versions, self.cache, retried=True)
        assert debs is not None
        for name in bare:
            deb = debs[name]
            with tempfile.TemporaryDirectory(dir=self.root.parent) as tmp:
                run(["dpkg-deb", "-x", str(deb), tmp])
                size = tree_size(Path(tmp))
                merge_tree(Path(tmp), self.root)
            self.unpacked[name] = (versions[name], deb)
            reason = (why or {}).get(name)
            suffix = f"  ({reason})" if reason else ""
            log(f"  + {name} {versions[name]}: {human(deb.stat().st_size)} .deb, {human(size)} unpacked{suffix}")

    def control(self, name: str) -> str:
        return run(["dpkg-deb", "-f", str(self.unpacked[name][1])]).stdout


def merge_tree(source: Path, target: Path) -> None:
    """Moves everything under source into target (as dpkg would unpack it there)."""
    for dirpath, dirnames, filenames in os.walk(source):
        rel = Path(dirpath).relative_to(source)
        dest_dir = target / rel
        if not dest_dir.exists() and not dest_dir.is_symlink():
            dest_dir.mkdir(parents=True)
            shutil.copystat(dirpath, dest_dir)
        for name in dirnames[:]:
            src = Path(dirpath) / name
            if src.is_symlink():  # a symlink to a directory: move it as a file
                dirnames.remove(name)
                filenames.append(name)
        for name in filenames:
            src = Path(dirpath) / name
            dst = dest_dir / name
            if dst.is_symlink() or dst.is_file():
                dst.unlink()
            os.rename(src, dst)


# --- shared libraries ----------------------------------------------------------

def is_elf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


_NEEDED_CACHE: dict[tuple[str, int, int], list[str]] = {}


def needed_libraries(root: Path) -> list[tuple[str, str]]:
    """(soname, the file relative to root that needs it), for every ELF file under root."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    keys = {p: (str(p), p.stat().st_ino, p.stat().st_size) for p in files}
    fresh = [p for p in files if keys[p] not in _NEEDED_CACHE and is_elf(p)]
    for p in files:
        if keys[p] not in _NEEDED_CACHE and p not in fresh:
            _NEEDED_CACHE[keys[p]] = []
    for start in range(0, len(fresh), 200):
        batch = fresh[start:start + 200]
        for p in batch:
            _NEEDED_CACHE[keys[p]] = []
        out = run(["readelf", "-d", "-W"] + [str(p) for p in batch], check=False).stdout
        current = batch[0]
        for line in out.splitlines():
            if line.startswith("File: "):
                current = Path(line[6:].strip())
            elif "(NEEDED)" in line and "[" in line and current in keys:
                _NEEDED_CACHE[keys[current]].append(line.rsplit("[", 1)[1].rstrip("]"))
    return [(soname, str(p.relative_to(root))) for p in files for soname in _NEEDED_CACHE[keys[p]]]


def present_libraries(root: Path) -> set[str]:
    names = set()
    for d in LIB_DIRS:
        directory = root / d
        if directory.is_dir():
            names.update(p.name for p in directory.iterdir())
    return names


def host_library_paths() -> dict[str, str]:
    paths: dict[str, str] = {}
    for line in run(["ldconfig", "-p"]).stdout.splitlines()[1:]:
        if "=>" not in line or "x86-64" not in line:
            continue
        left, path = line.split("=>", 1)
        paths.setdefault(left.split()[0], path.strip())
    return paths


def packages_owning(paths: list[str]) -> dict[str, str]:
    """path -> the installed package that owns it (one `dpkg -S` call; it reads every file list)."""
    variants: dict[str, str] = {}
    for path in paths:
        for p in (path, os.path.realpath(path)):
            variants.setdefault(p, path)
            variants.setdefault(p[4:] if p.startswith("/usr/") else "/usr" + p, path)
    result = run(["dpkg", "-S"] + sorted(variants), check=False)
    owners: dict[str, str] = {}
    for line in result.stdout.splitlines():
        if line.startswith("diversion") or ": " not in line:
            continue
        package, _, owned = line.partition(": ")
        if owned.strip() in variants:
            owners.setdefault(variants[owned.strip()], package.split(",")[0].split(":")[0].strip())
    return owners


def add_needed_libraries(base: Path, app: Path, packages: Packages) -> None:
    """Unpacks the packages of every library an ELF file in either layer needs, until none is missing."""
    host = host_library_paths()
    while True:
        present = present_libraries(base) | present_libraries(app)
        missing: dict[str, str] = {}
        for root in (base, app):
            for soname, user in needed_libraries(root):
                # A library beside the file that needs it ($ORIGIN, e.g. glibc's gconv modules).
                if soname not in present and not (root / user).with_name(soname).exists():
                    missing.setdefault(soname, user)
        if not missing:
            return
        wanted: dict[str, str] = {}
        for soname, user in sorted(missing.items()):
            if soname not in host:
                die(f"{user} needs {soname}, which no package in the image has and this machine "
                    "does not have either: install the package that has it here (apt-get install ...) "
                    "or name it with --package")
        owners = packages_owning([host[soname] for soname in missing])
        for soname, user in sorted(missing.items()):
            path = host[soname]
            package = owners.get(path)
            if package is None:
                die(f"{user} needs {soname}; this machine has it at {path} but no Debian package "
                    "owns that file: the image is built from packages only")
            if package in packages.unpacked:
                die(f"{user} needs {soname}; package {package} has it at {path} here but its "
                    ".deb did not put it in a library directory")
            wanted.setdefault(package, f"{soname} for {user}")
        packages.add(list(wanted), wanted)


# --- the root filesystem --------------------------------------------------------

def prune(root: Path) -> None:
    for rel in PRUNE:
        path = root / rel
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    doc = root / "usr/share/doc"
    if doc.is_dir():
        for entry in doc.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                for item in entry.iterdir():
                    if item.name != "copyright":
                        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()


def write_file(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def finish_rootfs(root: Path, packages: Packages, args: argparse.Namespace) -> None:
    prune(root)
    for rel in args.remove:
        path = root / rel.lstrip("/")
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            die(f"--remove {rel}: no such path in the image")
    for spec in args.symlink:
        link, _, target = spec.partition("=")
        if not target:
            die(f"--symlink {spec}: expected DEST=TARGET")
        path = root / link.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        os.symlink(target, path)
    for spec in args.mkdir:
        rel, _, mode = spec.partition(":")
        path = root / rel.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(int(mode, 8) if mode else 0o755)
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    write_file(root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
               "nonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin\n"
               "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    write_file(root, "etc/group", "root:x:0:\nnonroot:x:65532:\nnogroup:x:65534:\n")
    write_file(root, "etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
    status = root / "var/lib/dpkg/status.d"
    status.mkdir(parents=True, exist_ok=True)
    for name in sorted(packages.unpacked):
        (status / name).write_text(packages.control(name))


def check_interpreters(base: Path, app: Path) -> None:
    """Every script's #! interpreter must be in the image: remove the script or add the package."""
    problems = []
    for root in (base, app):
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.is_symlink() or not os.access(path, os.X_OK):
                continue
            with open(path, "rb") as f:
                first = f.readline(256)
            if not first.startswith(b"#!"):
                continue
            interpreter = first[2:].decode(errors="replace").split()[0] if first[2:].split() else ""
            rel = interpreter.lstrip("/")
            if not any((r / rel).exists() or (r / rel).is_symlink() for r in (base, app)):
                problems.append(f"/{path.relative_to(root)} (#!{interpreter})")
    if problems:
        die("scripts whose interpreter the image lacks: " + ", ".join(problems) +
            ": --remove them or add the interpreter's package")


BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin")


def exists_in_image(roots: tuple[Path, ...], rel: str, depth: int = 0) -> bool:
    """Whether /rel exists in the image made of roots, following symlinks inside the image only."""
    if depth > 40:
        return False
    parts = [p for p in rel.split("/") if p and p != "."]
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        link = next((r / prefix for r in roots if (r / prefix).is_symlink()), None)
        if link is not None:
            target = os.readlink(link)
            base = "" if target.startswith("/") else "/".join(parts[:i - 1])
            rest = "/".join(parts[i:])
            joined = os.path.normpath("/".join(x for x in (base, target.lstrip("/"), rest) if x))
            return exists_in_image(roots, joined.lstrip("/"), depth + 1)
        if not any((r / prefix).exists() for r in roots):
            return False
    return True


def check_commands(base: Path, app: Path) -> None:
    """No command that leads nowhere: every symlink in a bin directory resolves inside the image."""
    dangling = []
    for d in BIN_DIRS:
        for root in (base, app):
            directory = root / d
            if directory.is_dir() and not directory.is_symlink():
                for entry in sorted(directory.iterdir()):
                    rel = f"{d}/{entry.name}"
                    if entry.is_symlink() and not exists_in_image((base, app), rel):
                        dangling.append(f"/{rel} -> {os.readlink(entry)}")
    if dangling:
        die("commands whose symlink leads nowhere in the image: " + ", ".join(dangling) +
            ": --remove them or add what they point to")


def add_files(app: Path, args: argparse.Namespace) -> None:
    for spec in args.add:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            die(f"--add {spec}: expected SRC:DEST[:MODE]")
        src, dest = Path(parts[0]), app / parts[1].lstrip("/")
        if not src.is_file():
            die(f"--add {spec}: {src} is not a file (build it first)")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        dest.chmod(int(parts[2], 8) if len(parts) == 3 else (0o755 if os.access(src, os.X_OK) else 0o644))
        log(f"  + {parts[1]}: {human(dest.stat().st_size)} from {src}")


# --- OCI layout -------------------------------------------------------------------

def layer_tar(root: Path, epoch: int) -> bytes:
    """An uncompressed tar of root: sorted, numeric owners, fixed mtimes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in dirnames + filenames:
                paths.append(Path(dirpath) / name)
        for path in sorted(paths, key=lambda p: str(p.relative_to(root))):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.mtime = epoch
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = stat.S_IMODE(path.lstat().st_mode)
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_blob(layout: Path, data: bytes) -> str:
    digest = sha256(data)
    (layout / "blobs/sha256" / digest.split(":", 1)[1]).write_bytes(data)
    return digest


def oci_archive(layers: list[Path], args: argparse.Namespace, epoch: int, out: Path) -> str:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        layout = Path(tmp)
        (layout / "blobs/sha256").mkdir(parents=True)
        layer_descriptors, diff_ids, history = [], [], []
        for root in layers:
            if not any(root.iterdir()):
                continue  # no --add files: one layer
            raw = layer_tar(root, epoch)
            compressed = gzip.compress(raw, compresslevel=6, mtime=0)
            digest = write_blob(layout, compressed)
            layer_descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                      "digest": digest, "size": len(compressed)})
            diff_ids.append(sha256(raw))
            history.append({"created": created, "created_by": f"scripts/image/build.py: {root.name}"})
            log(f"  layer {root.name}: {human(len(raw))} tar, {human(len(compressed))} gzip")
        name, _, tag = args.tag.rpartition(":")
        if not name or "/" in tag:
            die(f"--tag {args.tag}: expected NAME:TAG, e.g. localhost/egressd:0.1.0")
        config: dict = {"Env": [f"PATH={DEFAULT_PATH}"] + args.env, "WorkingDir": args.workdir,
                        "Labels": dict(sorted(kv.split("=", 1) for kv in args.label))}
        if args.entrypoint:
            config["Entrypoint"] = json.loads(args.entrypoint)
        if args.cmd:
            config["Cmd"] = json.loads(args.cmd)
        if args.user:
            config["User"] = args.user
        image_config = {"created": created, "architecture": ARCH, "os": "linux", "config": config,
                        "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}
        config_bytes = json.dumps(image_config, sort_keys=True, separators=(",", ":")).encode()
        config_digest = write_blob(layout, config_bytes)
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": config_digest, "size": len(config_bytes)},
                    "layers": layer_descriptors,
                    "annotations": {"org.opencontainers.image.created": created,
                                    "org.opencontainers.image.version": tag}}
        manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        manifest_digest = write_blob(layout, manifest_bytes)
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                "digest": manifest_digest, "size": len(manifest_bytes),
                                "platform": {"architecture": ARCH, "os": "linux"},
                                "annotations": {"io.containerd.image.name": args.tag,
                                                "org.opencontainers.image.ref.name": tag}}]}
        (layout / "index.json").write_text(json.dumps(index, sort_keys=True, separators=(",", ":")))
        (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        # Written beside the target, then renamed: a reader never sees half an archive.
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", delete=False) as f:
            f.write(layer_tar(layout, epoch))
        os.replace(f.name, out)
        out.chmod(0o644)
    return manifest_digest


def source_date_epoch() -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    result = run(["git", "log", "-1", "--format=%ct"], check=False)
    return int(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tag", required=True, help="image name, NAME:TAG")
    parser.add_argument("--out", required=True, type=Path, help="the OCI archive to write")
    parser.add_argument("--packages", action="append", default=[], type=Path,
                        help="file with Debian package names, one a line, # comments")
    parser.add_argument("--package", action="append", default=[], help="a Debian package")
    parser.add_argument("--add", action="append", default=[], help="SRC:DEST[:MODE], a file")
    parser.add_argument("--symlink", action="append", default=[], help="DEST=TARGET")
    parser.add_argument("--remove", action="append", default=[], help="a path the packages brought")
    parser.add_argument("--mkdir", action="append", default=[], help="PATH[:MODE], an empty directory")
    parser.add_argument("--entrypoint", help='JSON list, e.g. ["egressd"]')
    parser.add_argument("--cmd", help="JSON list")
    parser.add_argument("--env", action="append", default=[], help="K=V")
    parser.add_argument("--user", help="UID[:GID]")
    parser.add_argument("--workdir", default="/")
    parser.add_argument("--label", action="append", default=[], help="K=V")
    parser.add_argument("--cache", type=Path, default=Path("build/image-cache"),
                        help="where downloaded .deb files are kept (default build/image-cache)")
    args = parser.parse_args()

    os.umask(0o022)  # the modes of the directories this script makes
    started = time.monotonic()
    epoch = source_date_epoch()
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    names = [n for f in args.packages for n in read_package_list(f)] + args.package
    with tempfile.TemporaryDirectory(prefix=".image-", dir=out.parent) as tmp:
        base, app = Path(tmp) / "debian", Path(tmp) / "app"
        base.mkdir()
        app.mkdir()
        packages = Packages(base, args.cache.resolve())
        log(f"{args.tag}: packages")
        packages.add(names)
        log(f"{args.tag}: files")
        add_files(app, args)
        log(f"{args.tag}: shared libraries (NEEDED)")
        add_needed_libraries(base, app, packages)
        finish_rootfs(base, packages, args)
        check_interpreters(base, app)
        check_commands(base, app)
        log(f"{args.tag}: OCI archive (SOURCE_DATE_EPOCH={epoch})")
        digest = oci_archive([base, app], args, epoch, out)
    out.with_name(out.name + ".digest").write_text(digest + "\n")
    lines = [f"{name} {version} {hashlib.sha256(deb.read_bytes()).hexdigest()}"
             for name, (version, deb) in sorted(packages.unpacked.items())]
    out.with_name(out.name + ".packages").write_text("\n".join(lines) + "\n")
    log(f"{args.tag}: {out} {human(out.stat().st_size)}, {len(packages.unpacked)} packages, "
        f"{time.monotonic() - started:.1f} s")
    print(digest)


if __name__ == "__main__":
    main()
