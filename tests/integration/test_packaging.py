#!/usr/bin/env python3
"""Packaging (issue 13 part 5): what `make install`, the man page, the systemd unit, the
Containerfile and compose.yaml promise, checked by running what they run.

1. `blockpipe --version` names the build: version, a git describe naming a commit of this
   repository (or the not-a-checkout fallback), build type, compiler, and the outputs
   compiled in (with those left out) - every output of --help exactly once.
2. `cmake --install BUILD --prefix TMP` (the install step of `make install PREFIX=TMP`):
   bin/blockpipe, include/blockpipe/*.h equal to the sources', share/man/man1/blockpipe.1
   equal to `blockpipe --help-man`, the sample config in etc/blockpipe/ and share/doc/, the
   systemd unit configured for that prefix; an edited config survives a second install; a
   libblockpipe the build made (another part of issue 13) must be installed too.
3. `man -l` renders the page without a warning, and every flag and command that any --help
   shows appears in it; `man -w blockpipe` finds it under the prefix.
4. yamllint passes compose.yaml and packaging/*.yaml (and fails a broken file: it runs).
5. `systemd-analyze verify` of the installed unit: exit 0, nothing on stderr; `systemd-analyze
   security --offline` rates its sandbox OK (exposure <= 2.0). Where systemd-analyze is
   absent the test fails naming it (install-deps.sh --test installs it): it never skips.
6. The Containerfile: Debian 12 base, two stages, non-root USER, HEALTHCHECK on /health; its
   build stage's `make install ... PREFIX=P DESTDIR=D` is run (install step) into a staging
   root; the runtime stage's apt packages own every shared library the staged binary needs
   (objdump NEEDED, ldd, dpkg -S).
7. compose.yaml: each blockpipe service's command (ENTRYPOINT + command, compose variables
   interpolated, the image's ENV) is run from the staging root with its host names pointed at
   servers this test starts on loopback (PostgreSQL, ClickHouse, Redis; simnode as the node),
   both at once as `compose --profile streaming up` would, and its healthcheck command must
   pass while it runs. The backfill must exit 0 with blocks FROM..TO in PostgreSQL (no row
   twice, though the follower writes the same tables) and ClickHouse; the follower must reach
   the node's head in PostgreSQL and publish to Redis, and exit 0 on SIGTERM.

There is no container engine on the test machines: nothing here builds or runs an image.
"""

import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from clickhouse import ClickHouse  # noqa: E402
from pg import Postgres  # noqa: E402
from pgcheck import Fail, blockpipe_bin, tail, wait_for  # noqa: E402
from redis import Redis  # noqa: E402
from server import free_port  # noqa: E402
from simnode import Simnode  # noqa: E402

try:
    import yaml
except ImportError:  # Debian's python3-yaml (a dependency of yamllint) under another python
    sys.path.append("/usr/lib/python3/dist-packages")
    import yaml

SRC = os.environ["BP_SOURCE_DIR"]
BUILD = os.environ["BP_BUILD_DIR"]
BP_TO = 12  # the backfill's last block: above the node's head at start, so it runs a while
DEADLINE = 120  # a hang guard only


def sh(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise Fail(f"{cmd} exited {r.returncode}: {r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r


def check_version(bp):
    out = sh([bp, "--version"]).stdout
    fields = dict(re.findall(r"^([a-z ]+):\s*(.*)$", out, re.M))
    if not out.startswith("blockpipe ") or not re.match(r"blockpipe \d+\.\d+\.\d+\n", out):
        raise Fail(f"--version: no version on its first line: {out!r}")
    for k in ("git describe", "build type", "compiler", "outputs"):
        if not fields.get(k):
            raise Fail(f"--version: no '{k}:' line: {out!r}")
    describe = fields["git describe"]
    if os.path.exists(os.path.join(SRC, ".git")) and not describe.startswith("unknown"):
        m = re.search(r"(?:-g)?([0-9a-f]{7,40})(?:-dirty)?$", describe)
        if not m or sh(["git", "-C", SRC, "cat-file", "-e", m.group(1) + "^{commit}"],
                       check=False).returncode != 0:
            raise Fail(f"--version: git describe {describe!r} names no commit of {SRC}")
    elif not describe.startswith("unknown"):
        raise Fail(f"--version: git describe {describe!r} without a git checkout")
    if fields["build type"].split(",")[0] not in ("Debug", "Release", "RelWithDebInfo",
                                                   "MinSizeRel"):
        raise Fail(f"--version: build type {fields['build type']!r}")
    help_schemes = re.findall(r"^  ([a-z-]+):", sh([bp, "--help"]).stdout.split(
        "outputs (--output URL")[1], re.M)
    have = fields["outputs"].split()
    left = re.findall(r"([a-z-]+) \(missing", fields.get("left out", ""))
    if sorted(have + left) != sorted(help_schemes):
        raise Fail(f"--version: outputs {have} + left out {left} != --help's {help_schemes}")
    print(f"ok: --version: {describe}, {fields['build type']}, {fields['compiler']}, "
          f"outputs {' '.join(have)}")
    return out


def check_install(bp, prefix):
    sh(["cmake", "--install", BUILD, "--prefix", prefix])
    exe = os.path.join(prefix, "bin", "blockpipe")
    if not os.access(exe, os.X_OK):
        raise Fail(f"{exe} not installed")
    if sh([exe, "--version"]).stdout != sh([bp, "--version"]).stdout:
        raise Fail("the installed binary is not the built one")
    headers = glob.glob(os.path.join(SRC, "include", "blockpipe", "*.h"))
    for h in headers:
        inst = os.path.join(prefix, "include", "blockpipe", os.path.basename(h))
        if not os.path.exists(inst) or open(inst).read() != open(h).read():
            raise Fail(f"header {inst} missing or different from the sources'")
    man = os.path.join(prefix, "share", "man", "man1", "blockpipe.1")
    if not os.path.exists(man) or open(man).read() != sh([bp, "--help-man"]).stdout:
        raise Fail(f"{man} missing or not what `blockpipe --help-man` prints")
    sample = open(os.path.join(SRC, "packaging", "blockpipe.yaml")).read()
    conf = os.path.join(prefix, "etc", "blockpipe", "blockpipe.yaml")
    for f in (conf, os.path.join(prefix, "share", "doc", "blockpipe", "blockpipe.yaml")):
        if not os.path.exists(f) or open(f).read() != sample:
            raise Fail(f"{f}: missing or not packaging/blockpipe.yaml")
    unit = os.path.join(prefix, "lib", "systemd", "system", "blockpipe.service")
    text = open(unit).read() if os.path.exists(unit) else ""
    want = f"ExecStart={exe} run --config {conf}\n"
    if want not in text or re.search(r"@[A-Z_]+@", text):
        raise Fail(f"{unit}: no '{want.strip()}' or an unconfigured @VAR@:\n{text}")
    # A second install keeps the admin's config.
    with open(conf, "a") as f:
        f.write("# edited by the admin\n")
    sh(["cmake", "--install", BUILD, "--prefix", prefix])
    if not open(conf).read().endswith("# edited by the admin\n"):
        raise Fail("make install overwrote an edited etc/blockpipe/blockpipe.yaml")
    # The library hook: whatever libblockpipe the build made is installed with its .pc.
    built = [os.path.basename(p) for p in glob.glob(os.path.join(BUILD, "libblockpipe.*"))
             if not p.endswith(".cmake")]
    installed = {os.path.basename(p) for d in ("lib", "lib64", "lib/x86_64-linux-gnu")
                 for p in glob.glob(os.path.join(prefix, d, "libblockpipe.*"))}
    missing = [b for b in built if b not in installed]
    if missing:
        raise Fail(f"built but not installed: {missing} (add them to BP_INSTALL_LIBRARIES)")
    if glob.glob(os.path.join(BUILD, "**", "blockpipe.pc"), recursive=True) and not glob.glob(
            os.path.join(prefix, "**", "pkgconfig", "blockpipe.pc"), recursive=True):
        raise Fail("blockpipe.pc built but not installed (BP_PKGCONFIG_FILE)")
    print(f"ok: installed into {prefix}: binary, {len(headers)} headers, man page, unit, config "
          f"(kept on reinstall); libraries: {built or 'none built'}")
    return exe, unit, man


def help_flags(bp):
    """Every --flag and command word that any --help of the program prints."""
    texts = [sh([bp, "--help"]).stdout]
    for cmd in ("run", "backfill", "verify", "migrate", "serve", "retry-failed", "simnode",
                "stream"):
        texts.append(sh([bp, cmd, "--help"]).stdout)
    flags = set()
    for t in texts:
        flags.update(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", t))
    commands = re.findall(r"^  blockpipe ([a-z-]+) ", texts[0], re.M)
    return flags, commands


def check_man(bp, man, prefix):
    env = dict(os.environ, MANWIDTH="100", LC_ALL="C.UTF-8", MANPAGER="cat", PAGER="cat")
    r = subprocess.run(["man", "-l", man], capture_output=True, text=True, env=env)
    if r.returncode != 0 or r.stderr.strip():
        raise Fail(f"man -l {man}: exit {r.returncode}, stderr {r.stderr[-2000:]!r}")
    page = re.sub(r".\x08", "", r.stdout)  # overstrike bold, if any
    flags, commands = help_flags(bp)
    absent = sorted(f for f in flags if f not in page)
    absent += [c for c in commands if f"blockpipe {c}" not in page and f"\n       {c}" not in page]
    if absent or len(flags) < 100:
        raise Fail(f"the man page lacks {absent} of the {len(flags)} flags of --help")
    w = sh(["man", "-w", "blockpipe"], env=dict(env, MANPATH=os.path.join(prefix, "share", "man")
                                                + ":"))
    if w.stdout.strip() != man:
        raise Fail(f"man -w blockpipe found {w.stdout.strip()!r}, not {man}")
    print(f"ok: man -l renders {len(page.splitlines())} lines, no warning; all {len(flags)} "
          f"flags and {len(commands)} commands of --help are in it")


def check_yamllint():
    files = [os.path.join(SRC, "compose.yaml")] + sorted(
        glob.glob(os.path.join(SRC, "packaging", "*.yaml")))
    cfg = os.path.join(SRC, ".yamllint")
    r = sh(["yamllint", "--strict", "-c", cfg] + files, check=False)
    if r.returncode != 0:
        raise Fail(f"yamllint: {r.stdout}{r.stderr}")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as bad:
        bad.write("services:\n  a: 1\n  a: 2\n")
        bad.flush()
        if sh(["yamllint", "--strict", "-c", cfg, bad.name], check=False).returncode == 0:
            raise Fail("yamllint passed a file with a duplicated key: it does not check")
    print(f"ok: yamllint --strict: {', '.join(os.path.relpath(f, SRC) for f in files)}")


def check_unit(unit, prefix):
    tool = shutil.which("systemd-analyze")
    if not tool:  # a test that misses a tool fails, it never skips (install-deps.sh)
        raise Fail("systemd-analyze is missing, so the unit cannot be verified: run "
                   "scripts/install-deps.sh --test (Debian package systemd; nothing needs "
                   "to run)")
    env = dict(os.environ, MANPATH=os.path.join(prefix, "share", "man") + ":")
    r = subprocess.run([tool, "verify", unit], capture_output=True, text=True, env=env)
    if r.returncode != 0 or r.stderr.strip():
        raise Fail(f"systemd-analyze verify {unit}: exit {r.returncode}: {r.stderr}")
    r = sh([tool, "security", "--offline=true", unit], env=env)
    m = re.search(r"Overall exposure level for blockpipe.service: ([0-9.]+)", r.stdout)
    if not m or float(m.group(1)) > 2.0:
        raise Fail(f"systemd-analyze security: exposure above 2.0:\n{r.stdout[-3000:]}")
    print(f"ok: systemd-analyze verify clean; sandbox exposure {m.group(1)}")


def containerfile():
    """The stages of the Containerfile: [{from, name, run: [...], (instruction): value}]."""
    text = open(os.path.join(SRC, "Containerfile")).read()
    text = re.sub(r"\\\n", " ", re.sub(r"^\s*#.*\n", "", text, flags=re.M))
    args, stages = {}, []
    for ln in text.splitlines():
        if not ln.strip():
            continue
        ins, _, rest = ln.strip().partition(" ")
        ins, rest = ins.upper(), rest.strip()
        if ins == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k] = v
        elif ins == "FROM":
            base, _, name = rest.partition(" AS ")
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), base)
            stages.append({"from": base, "name": name.strip(), "RUN": [], "ENV": {}})
        elif ins == "RUN":
            stages[-1]["RUN"].append(rest)
        elif ins == "ENV":
            k, _, v = rest.partition("=")
            stages[-1]["ENV"][k] = v
        else:
            stages[-1][ins] = rest
    return stages


def apt_packages(runs):
    pkgs = []
    for cmd in runs:
        for part in cmd.split("&&"):
            words = part.split()
            if "apt-get" in words and "install" in words:
                pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def dpkg_owners(paths):
    """{library path: its package}, by one `dpkg -S` (a slow command) over every path and the
    merged-/usr aliases dpkg may know it by."""
    alias = {}
    for p in paths:
        for c in (p, os.path.realpath(p)):
            alias[c] = p
            if c.startswith("/usr/lib/"):
                alias[c[4:]] = p
            elif c.startswith("/lib/"):
                alias["/usr" + c] = p
    r = subprocess.run(["dpkg", "-S"] + sorted(alias), capture_output=True, text=True)
    owners = {}
    for ln in r.stdout.splitlines():
        pkg, _, path = ln.partition(": ")
        if path in alias and "," not in pkg:
            owners[alias[path]] = pkg.split(":")[0]
    return owners


def check_containerfile(staging):
    stages = containerfile()
    if len(stages) < 2 or not all("debian:12" in s["from"] for s in stages):
        raise Fail(f"Containerfile: want two stages on Debian 12: {[s['from'] for s in stages]}")
    rt = stages[-1]
    if rt.get("USER", "root") in ("root", "0"):
        raise Fail("Containerfile: the runtime stage runs as root")
    hc = rt.get("HEALTHCHECK", "")
    if "/health" not in hc:
        raise Fail(f"Containerfile: no HEALTHCHECK on /health: {hc!r}")
    # The build stage's install, run here: its install step (make install's last command).
    make = next((r for r in stages[0]["RUN"] if "make install" in r), None)
    if not make:
        raise Fail("Containerfile: the build stage runs no `make install`")
    opts = dict(re.findall(r"\b(PREFIX|DESTDIR)=(\S+)", make))
    recipe = sh(["make", "-n", "-C", SRC, "install", f"BUILD={BUILD}"] +
                [f"{k}={v}" for k, v in opts.items()]).stdout
    if f'cmake --install {BUILD} --prefix "{opts["PREFIX"]}"' not in recipe:
        raise Fail(f"make install does not run cmake --install for {opts}: {recipe}")
    sh(["cmake", "--install", BUILD, "--prefix", opts["PREFIX"]],
       env=dict(os.environ, DESTDIR=staging))
    if f"COPY --from=build {opts['DESTDIR']}/ /" not in "COPY " + rt.get("COPY", ""):
        raise Fail(f"Containerfile: the runtime stage does not copy {opts['DESTDIR']}/")
    exe = os.path.join(staging, opts["PREFIX"].lstrip("/"), "bin", "blockpipe")
    # Shared libraries: every NEEDED entry's package is installed in the runtime stage.
    pkgs = set(apt_packages(rt["RUN"]))
    needed = re.findall(r"NEEDED\s+(\S+)", sh(["objdump", "-p", exe]).stdout)
    where = dict(re.findall(r"^\s*(\S+) => (/\S+)", sh(["ldd", exe]).stdout, re.M))
    sanitizers = ("libasan.", "libubsan.", "liblsan.", "libtsan.")
    # The sanitizers' libraries are the ASan test build's own: the release build links none.
    libs = [lib for lib in needed if not lib.startswith(sanitizers)]
    by_path = dpkg_owners([where[lib] for lib in libs if lib in where])
    owners = {lib: by_path.get(where.get(lib)) for lib in libs}
    uncovered = [f"{lib} ({o or 'no package'})" for lib, o in owners.items() if o not in pkgs]
    if uncovered or not owners:
        raise Fail(f"Containerfile: the runtime stage lacks the packages of {uncovered}")
    for tool in ("curl",):
        if tool not in pkgs and tool in hc:
            raise Fail(f"Containerfile: HEALTHCHECK runs {tool}, not installed")
    print(f"ok: Containerfile: {len(stages)} stages on {stages[-1]['from']}, USER {rt['USER']}, "
          f"{len(owners)} shared libraries all from its {len(pkgs)} apt packages")
    return rt, exe


def interpolate(value, env):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error}."""
    def one(m):
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise Fail(f"compose.yaml: ${{{name}}} must be set: {arg}")
        return arg or ""
    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def json_list(s):
    return json.loads(s[s.index("["):])


class Service:
    """A blockpipe service of compose.yaml run from the staging root, with its host names
    pointed at this test's servers and its API on a port of its own."""

    def __init__(self, name, svc, rt, exe, staging, servers, cvars, tmp):
        self.name, self.port = name, free_port()
        state = os.path.join(tmp, "var-lib-blockpipe")
        os.makedirs(state, exist_ok=True)
        paths = {"/var/lib/blockpipe": state,
                 "/etc/blockpipe/": os.path.join(staging, "etc", "blockpipe") + "/"}
        entry = json_list(rt["ENTRYPOINT"])
        entry[0] = exe if entry[0] == "blockpipe" else entry[0]
        env = {k: v for k, v in rt["ENV"].items()}
        env.update({k: interpolate(str(v), cvars) for k, v in svc.get("environment", {}).items()})
        env["API_LISTEN"] = env["API_LISTEN"].replace(":8080", f":{self.port}").replace(
            "0.0.0.0", "127.0.0.1")
        self.cmd = entry + [self.local(interpolate(str(a), cvars), servers, paths)
                            for a in svc["command"]]
        self.health = [a.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
                       for a in svc.get("healthcheck", {}).get("test", [])[1:]]
        if not self.health:
            self.health = [a.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
                           for a in json_list(rt["HEALTHCHECK"])]
        self.log = os.path.join(tmp, f"{name}.log")
        self.env = dict(os.environ, **env)
        self.proc = None

    @staticmethod
    def local(arg, servers, paths):
        for a, b in paths.items():
            if arg.startswith(a):
                return b + arg[len(a):]
        u = urllib.parse.urlsplit(arg)
        if u.scheme and u.hostname in servers:
            base = urllib.parse.urlsplit(servers[u.hostname](u.path.strip("/")))
            return urllib.parse.urlunsplit((u.scheme, base.netloc, base.path, u.query, ""))
        return arg

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT, env=self.env)

    def healthy(self):
        if self.proc.poll() is not None:
            raise Fail(f"{self.name} exited {self.proc.returncode} before it was healthy:\n"
                       f"{tail(self.log)}")
        return subprocess.run(self.health, capture_output=True).returncode == 0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def check_compose(rt, exe, staging, bp, tmp):
    doc = yaml.safe_load(open(os.path.join(SRC, "compose.yaml")))
    services = doc["services"]
    mine = {n: s for n, s in services.items() if "build" in s}
    streaming = [n for n, s in mine.items() if "streaming" in s.get("profiles", [])]
    plain = [n for n, s in mine.items() if not s.get("profiles")]
    if len(streaming) != 1 or len(plain) != 1 or mine[plain[0]]["command"][0] != "backfill" \
            or mine[streaming[0]]["command"][0] != "run":
        raise Fail(f"compose.yaml: want a backfill and, under `streaming`, a run: {mine}")
    for want in ("postgres", "clickhouse", "redis"):
        if want not in services:
            raise Fail(f"compose.yaml: no {want} service")
    # The staged config, as the volume at /var/lib/blockpipe sees it.
    conf = os.path.join(staging, "etc", "blockpipe", "blockpipe.yaml")
    state = os.path.join(tmp, "var-lib-blockpipe")
    with open(conf) as f:
        text = f.read().replace("/var/lib/blockpipe", state)
    with open(conf, "w") as f:
        f.write(text)

    node = Simnode(bp, ["--block-time", "1", "--start-head", "4", "--txs-per-block", "3-8"])
    pg, ch, rd = Postgres(), ClickHouse(), Redis()
    procs = []
    try:
        for s in (pg, ch, rd):
            s.start()
        pg.sql("CREATE DATABASE blockpipe")
        ch.post("CREATE DATABASE IF NOT EXISTS blockpipe")
        servers = {"postgres": lambda db: pg.url(db=db), "clickhouse": lambda db: ch.url(db=db),
                   "redis": lambda db: rd.url(db=int(db or 0))}
        cvars = {"RPC_URL": node.urls[0], "BP_FROM": "0", "BP_TO": str(BP_TO)}
        backfill = Service(plain[0], mine[plain[0]], rt, exe, staging, servers, cvars, tmp)
        follow = Service(streaming[0], mine[streaming[0]], rt, exe, staging, servers, cvars, tmp)
        procs = [backfill, follow]
        print("  " + shlex.join(backfill.cmd))
        print("  " + shlex.join(follow.cmd))
        for p in procs:
            p.start()
        for p in procs:
            wait_for(p.healthy, DEADLINE, f"{p.name}'s healthcheck {p.health}", step=0.2)
        print(f"ok: both healthchecks pass while they run ({shlex.join(backfill.health)})")
        try:
            rc = backfill.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            raise Fail(f"the backfill did not end:\n{tail(backfill.log)}")
        if rc != 0:
            raise Fail(f"the backfill exited {rc}:\n{tail(backfill.log)}")
        rows = pg.sql("SELECT number, count(*) FROM blocks GROUP BY number ORDER BY number",
                      db="blockpipe")
        got = {int(n): int(c) for n, c in rows}
        if any(got.get(n) != 1 for n in range(BP_TO + 1)) or any(c != 1 for c in got.values()):
            raise Fail(f"PostgreSQL blocks: want 0..{BP_TO} once each (and the follower's "
                       f"once), got {got}")
        chn = [int(r[0]) for r in ch.sql("SELECT number FROM blocks FINAL ORDER BY number",
                                         db="blockpipe")]
        if chn != list(range(BP_TO + 1)):
            raise Fail(f"ClickHouse blocks: want 0..{BP_TO}, got {chn}")
        # The follower: at the node's head (minus its confirmations) in PostgreSQL, in Redis.
        def caught_up():
            head = int(node.rpc_batch([("eth_blockNumber", [])])[0], 16)
            cps = pg.sql("SELECT output, number FROM checkpoints", db="blockpipe")
            return head > BP_TO and any(int(n) >= head - 4 for o, n in cps
                                        if "backfill" not in o)
        wait_for(caught_up, DEADLINE, "the follower at the head in PostgreSQL", step=0.3)
        keys = rd.call("KEYS", "*")
        if not keys:
            raise Fail("the follower wrote nothing to Redis")
        follow.proc.send_signal(signal.SIGTERM)
        if follow.proc.wait(timeout=60) != 0:
            raise Fail(f"the follower exited {follow.proc.returncode} on SIGTERM:\n"
                       f"{tail(follow.log)}")
        cps = pg.sql("SELECT output, number FROM checkpoints ORDER BY output", db="blockpipe")
        print(f"ok: compose: backfill 0..{BP_TO} into PostgreSQL + ClickHouse, follower at "
              f"the head into PostgreSQL + Redis ({len(keys)} keys); checkpoints {cps}")
    finally:
        for p in procs:
            p.stop()
        node.kill()
        for s in (rd, ch, pg):
            s.stop()


def main():
    bp = blockpipe_bin()
    tmp = tempfile.mkdtemp(prefix="bp-pkg-")
    try:
        check_version(bp)
        prefix = os.path.join(tmp, "prefix")
        exe, unit, man = check_install(bp, prefix)
        check_man(bp, man, prefix)
        check_yamllint()
        check_unit(unit, prefix)
        staging = os.path.join(tmp, "staging")
        rt, staged = check_containerfile(staging)
        check_compose(rt, staged, staging, bp, tmp)
    except Fail as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("test_packaging: ok")


if __name__ == "__main__":
    main()
