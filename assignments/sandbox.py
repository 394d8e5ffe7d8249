#!/usr/bin/env python3
"""Run one submission's Jupyter kernel in a sandbox (standard library only).

The grader (:func:`assignments.grade`) never runs a student's code itself: nbgrader's autograder
starts a kernel for each submission through jupyter_client. The grader writes a kernelspec
(``<course>/sandbox/kernels/course-sandbox/kernel.json``) whose command is this script::

    python sandbox.py --isolation bwrap --memory-mb 4096 ... -- \\
        python -m ipykernel_launcher -f {connection_file}

and points nbgrader at it (``Execute.kernel_name``), so every submission's kernel runs:

- with resource limits (``setrlimit``, applied inside the sandbox just before the kernel starts):
  memory per process (``RLIMIT_DATA`` on Linux: heap and anonymous mappings; ``RLIMIT_AS``
  elsewhere), CPU seconds per process (``RLIMIT_CPU``; past it the kernel is killed), processes
  and threads (``RLIMIT_NPROC``, counted inside the sandbox's own user namespace), size of any one
  file written (``RLIMIT_FSIZE``), no core dumps;
- with ``--isolation bwrap`` (Linux, bubblewrap installed and usable) in new user, PID, IPC, UTS
  and network namespaces, all capabilities dropped: no network at all (a loopback interface that
  is down), no process outside the sandbox visible or signalable, every process killed when the
  kernel ends; the file system read-only except the submission's own folder (the kernel's working
  directory), a private ``/tmp`` and a private scratch folder; the ``--hide`` folders (the grader's
  home, the course repository, the nbgrader course folder, the submissions, ``/home``, ``/root``,
  ``/run``, ``/var``, ``/srv``, ``/mnt``, ``/media``, ``/etc/shadow`` ...) replaced by empty
  read-only folders, except the ``--show`` folders re-exposed read-only (the Python installation
  and ``course_lib``);
- with ``--isolation netns`` (Linux, as root, no bubblewrap): the limits and a network namespace
  only (``unshare --net``);
- with ``--isolation rlimits``: the limits only.

The grader chooses the strongest isolation this machine offers (:func:`probe`) and says what is
missing. The kernel talks to the grader over Unix sockets (jupyter_client's ``ipc`` transport),
which work across network namespaces; their files live in a private folder created here and are
reached from the grader's runtime folder through symbolic links, so the runtime folder itself
stays read-only inside the sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: What the course's notebooks need with room to spare (they use up to ~1-2 GB and a few minutes
#: of CPU each); ``course.py grade --memory-mb ... --cpu-seconds ...`` changes them.
DEFAULT_MEMORY_MB = 4096
DEFAULT_CPU_SECONDS = 1800
DEFAULT_PROCESSES = 256
DEFAULT_FILE_MB = 256

#: Folders every bubblewrap sandbox hides (replaced by an empty read-only folder) besides the
#: ones the grader names: other users' files, services' sockets and state, mounted media.
ALWAYS_HIDDEN = ("/home", "/root", "/run", "/var", "/srv", "/mnt", "/media", "/etc/ssh",
                 "/etc/sudoers.d")
#: Files hidden the same way (replaced by an empty file).
ALWAYS_HIDDEN_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-",
                       "/etc/sudoers")
#: Writable, private, empty on every start.
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")
#: The user id inside the sandbox (``nobody``); bubblewrap drops every capability for it.
SANDBOX_UID = 65534

ISOLATIONS = ("bwrap", "netns", "rlimits")


@dataclass(frozen=True)
class Limits:
    """Resource limits of each submission's kernel (each applies to every process in it).

    Parameters
    ----------
    memory_mb : int
        Memory one process may allocate, in MiB (heap and anonymous mappings; an allocation past it
        raises ``MemoryError`` or torch's "can't allocate memory").
    cpu_seconds : int
        CPU time one process may use, in seconds (user + system, all threads); past it the kernel
        is killed and the rest of the notebook is not graded.
    processes : int
        Processes and threads that may exist at once inside the sandbox (``fork`` past it raises
        ``BlockingIOError``). Counted per sandbox only with bubblewrap (its own user namespace).
    file_mb : int
        Largest file a process may write, in MiB (past it: ``OSError: File too large``).
    """

    memory_mb: int = DEFAULT_MEMORY_MB
    cpu_seconds: int = DEFAULT_CPU_SECONDS
    processes: int = DEFAULT_PROCESSES
    file_mb: int = DEFAULT_FILE_MB

    def __post_init__(self):
        for name in ("memory_mb", "cpu_seconds", "processes", "file_mb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")

    def args(self) -> list[str]:
        return ["--memory-mb", str(self.memory_mb), "--cpu-seconds", str(self.cpu_seconds),
                "--processes", str(self.processes), "--file-mb", str(self.file_mb)]

    def describe(self) -> str:
        return (f"memory {self.memory_mb} MB per process, CPU {self.cpu_seconds} s per process, "
                f"{self.processes} processes/threads, files up to {self.file_mb} MB each")


# --------------------------------------------------------------------------------------------
# What this machine offers (called by the grader)
# --------------------------------------------------------------------------------------------


def _works(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def probe() -> tuple[str | None, list[str]]:
    """The strongest isolation this machine offers, and what is missing from it.

    Returns
    -------
    isolation : str or None
        ``"bwrap"`` (limits, namespaces, read-only file system), ``"netns"`` (limits and no
        network), ``"rlimits"`` (limits only), or None where no mechanism exists (not POSIX).
    warnings : list of str
        One line per missing protection, saying how to get it.
    """
    if os.name != "posix":
        return None, ["this is not a POSIX system: submissions run without resource limits, with "
                      "network access, and can write wherever the grading account can; grade on "
                      "Linux with bubblewrap installed"]
    if not sys.platform.startswith("linux"):
        return "rlimits", [f"{sys.platform} offers no namespaces to this grader: submissions run with "
                           "resource limits only (memory as address space), with network access, and "
                           "can write wherever the grading account can; grade on Linux with "
                           "bubblewrap installed"]
    bwrap = shutil.which("bwrap")
    if bwrap:
        with tempfile.TemporaryDirectory(prefix="course-sandbox-probe-") as tmp:
            (Path(tmp) / "cwd").mkdir()
            if _works(bwrap_command(["true"], cwd=str(Path(tmp) / "cwd"), private=Path(tmp))):
                return "bwrap", []
    why = ("bubblewrap (`bwrap`) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
           if not bwrap else "bubblewrap cannot create namespaces here (user namespaces disabled?)")
    if os.geteuid() == 0 and shutil.which("unshare") and _works(["unshare", "--net", "true"]):
        return "netns", [f"{why}: submissions run with resource limits and without network, but "
                         "can read and write wherever the grading account can, and the process "
                         "limit does not apply to root"]
    return "rlimits", [f"{why}, and network namespaces need root: submissions run with resource "
                       "limits only, with network access, and can read and write wherever the "
                       "grading account can"]


def kernelspec(limits: Limits, isolation: str, *, hide=(), show=(),
               python: str | None = None) -> dict:
    """The kernel.json that runs ipykernel through this script.

    Parameters
    ----------
    limits : Limits
    isolation : {"bwrap", "netns", "rlimits"}
    hide : iterable of path
        Folders (or files) the kernel must not see (bubblewrap only).
    show : iterable of path
        Folders re-exposed read-only inside hidden ones (bubblewrap only); the Python installation
        running the kernel is always shown.
    python : str, optional
        The interpreter (default: this one).
    """
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation: expected one of {ISOLATIONS}, got {isolation!r}")
    python = python or sys.executable
    argv = [python, str(Path(__file__).resolve()), "--isolation", isolation, *limits.args()]
    for p in hide:
        argv += ["--hide", str(p)]
    for p in show:
        argv += ["--show", str(p)]
    argv += ["--", python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    return {"argv": argv, "display_name": "Python 3 (course sandbox)", "language": "python",
            # the kernel interrupts itself on a control message: no signal has to cross the sandbox
            "interrupt_mode": "message",
            "metadata": {"debugger": False}}


# --------------------------------------------------------------------------------------------
# Inside the sandbox: apply the limits, then become the kernel
# --------------------------------------------------------------------------------------------


def apply_limits(limits: Limits) -> None:
    """Set this process's resource limits (inherited by everything it starts)."""
    import resource

    mb = 1024 * 1024

    def setlim(name, soft, hard=None):
        key = getattr(resource, name, None)
        if key is not None:
            resource.setrlimit(key, (soft, soft if hard is None else hard))

    setlim("RLIMIT_CORE", 0)
    setlim("RLIMIT_FSIZE", limits.file_mb * mb)
    # past the soft limit the kernel gets SIGXCPU (and dies), past the hard one SIGKILL
    setlim("RLIMIT_CPU", limits.cpu_seconds, limits.cpu_seconds + 5)
    if sys.platform.startswith("linux"):
        # Linux >= 4.7 counts heap and private writable mappings here: what a process allocates,
        # not the gigabytes of address space torch's libraries map without using
        setlim("RLIMIT_DATA", limits.memory_mb * mb)
    else:
        setlim("RLIMIT_AS", limits.memory_mb * mb)
    setlim("RLIMIT_NPROC", limits.processes)


def _drop_privileges(uid: int, own: list[str]) -> None:
    """Inside a sandbox that bubblewrap set up as root: hand the writable folders to ``uid`` and
    become it, so that the kernel is an ordinary user (file permissions apply, the process limit
    is enforced, no capability is left)."""
    for tmp in PRIVATE_TMP:
        if os.path.isdir(tmp):
            os.chmod(tmp, 0o1777)
    for top in own:
        for folder, dirs, files in os.walk(top):
            for name in [folder, *(os.path.join(folder, f) for f in dirs + files)]:
                os.lchown(name, uid, uid)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise SystemExit("sandbox: could not drop root privileges")


def _scratch_env(scratch: Path, fonts: Path | None) -> None:
    """Writable caches in the private scratch folder (the home folder is read-only here), with
    matplotlib's font list copied so that no check cell prints 'building the font cache'."""
    dirs = {"IPYTHONDIR": "ipython", "MPLCONFIGDIR": "matplotlib", "XDG_CACHE_HOME": "cache",
            "TMPDIR": "tmp"}
    for var, sub in dirs.items():
        (scratch / sub).mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(scratch / sub)
    if fonts and fonts.is_dir():
        for f in fonts.glob("fontlist-*.json"):
            try:
                shutil.copy(f, scratch / "matplotlib" / f.name)
            except OSError:
                pass


def _inner(args, kernel: list[str]) -> int:
    if args.drop_to is not None and os.getuid() == 0:
        _drop_privileges(args.drop_to, args.own)
    _scratch_env(Path(args.scratch), Path(args.fonts) if args.fonts else None)
    apply_limits(Limits(args.memory_mb, args.cpu_seconds, args.processes, args.file_mb))
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # the outer launcher ignores it; the kernel must not
    os.execv(kernel[0], kernel)
    return 127  # pragma: no cover


# --------------------------------------------------------------------------------------------
# Outside: a private folder for the kernel's sockets, then the sandbox
# --------------------------------------------------------------------------------------------


def _connection_arg(kernel: list[str]) -> int | None:
    for i, a in enumerate(kernel[:-1]):
        if a in ("-f", "--f"):
            return i + 1
    for i, a in enumerate(kernel):
        if a.startswith(("--f=", "-f=")):
            return i
    return None


def _private_connection(kernel: list[str], private: Path) -> tuple[list[str], list[Path], bool]:
    """Move the kernel's ipc sockets into ``private``: the kernel gets a copy of the connection
    file naming sockets there, and the paths the grader connects to become links to them.
    Returns the new kernel command, the links made, and whether the transport is ipc."""
    i = _connection_arg(kernel)
    if i is None:
        return kernel, [], False
    arg = kernel[i]
    path = Path(arg.split("=", 1)[1] if arg.startswith("-") else arg)
    info = json.loads(path.read_text())
    if info.get("transport") != "ipc":
        return kernel, [], False
    if not os.path.isabs(info["ip"]):
        raise SystemExit("sandbox: the ipc transport needs an absolute KernelManager.ip "
                         f"(the kernel and the grader run in different folders), got {info['ip']!r}")
    links = []
    for key in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
        port = info.get(key)
        if port is None:
            continue
        link = Path(f"{info['ip']}-{port}")
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(private / f"k-{port}")
        links.append(link)
    info["ip"] = str(private / "k")
    conn = private / "connection.json"
    conn.write_text(json.dumps(info))
    conn.chmod(0o600)
    kernel = list(kernel)
    kernel[i] = f"{arg.split('=', 1)[0]}={conn}" if arg.startswith("-") else str(conn)
    return kernel, links, True


def _matplotlib_cache() -> Path:
    if os.environ.get("MPLCONFIGDIR"):
        return Path(os.environ["MPLCONFIGDIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "matplotlib"


def _python_paths() -> list[str]:
    """What the kernel's interpreter needs to read: its installation and import path."""
    import site

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             str(Path(sys.executable).resolve().parent.parent)}
    paths.update(p for p in sys.path if p)
    try:
        paths.add(site.getusersitepackages())
    except Exception:  # noqa: BLE001 - a site module without user sites
        pass
    paths.add(str(Path(__file__).resolve().parent))
    return sorted(p for p in paths if os.path.exists(p))


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def bwrap_command(kernel_inner: list[str], *, cwd: str, private: Path, hide=(), show=(),
                  network: bool = False, as_root: bool | None = None, tmp_mb: int = 256) -> list[str]:
    """The bubblewrap command line that runs ``kernel_inner`` in the sandbox.

    As root, bubblewrap sets the sandbox up with its privileges and the inner command drops to
    ``SANDBOX_UID`` itself; otherwise bubblewrap maps the grader to ``SANDBOX_UID`` in a new user
    namespace and drops every capability.
    """
    as_root = (os.geteuid() == 0) if as_root is None else as_root
    cmd = ["bwrap", "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
           "--unshare-cgroup-try", "--hostname", "sandbox"]
    if not as_root:
        cmd += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
                "--disable-userns", "--cap-drop", "ALL"]
    if not network:
        cmd.append("--unshare-net")
    cmd += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    real = os.path.realpath
    # hiding / (e.g. HOME=/) would hide everything
    hidden = {real(p) for p in (*ALWAYS_HIDDEN, *hide) if os.path.isdir(p) and real(p) != "/"}
    hidden_files = {real(p) for p in (*ALWAYS_HIDDEN_FILES, *hide)
                    if os.path.exists(p) and not os.path.isdir(p)}
    writable = {real(cwd), str(private)}
    shown = {real(p) for p in (*_python_paths(), *show) if os.path.exists(p)}
    # a shown folder matters only inside a hidden one, and not inside another shown one
    tmp = {p for p in PRIVATE_TMP if os.path.isdir(p)}
    shown = {p for p in shown if any(_under(p, h) for h in hidden | tmp) and p not in hidden}
    shown = {p for p in shown
             if not any(q != p and _under(p, q) and not any(_under(h, q) and _under(p, h)
                                                            for h in hidden) for q in shown)}
    # folders bound inside a hidden (empty) one need their parents there, traversable by anyone
    parents = set()
    for p in shown | writable:
        for h in hidden | tmp:
            if _under(p, h) and p != h:
                a = os.path.dirname(p)
                while a != h and _under(a, h):
                    parents.add(a)
                    a = os.path.dirname(a)
    parents -= hidden | tmp | shown | writable
    ops = ([(p, "hide") for p in hidden] + [(p, "show") for p in shown] + [(p, "dir") for p in parents]
           + [(p, "tmp") for p in tmp] + [(p, "rw") for p in writable])
    # outer folders first, so that a folder bound inside a hidden one is not covered again
    order = {"hide": 0, "tmp": 1, "dir": 2, "show": 3, "rw": 4}
    ops.sort(key=lambda op: (op[0].count("/"), order[op[1]], op[0]))
    for path, kind in ops:
        if kind == "hide":
            cmd += ["--tmpfs", path]
        elif kind == "tmp":
            cmd += ["--perms", "1777", "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", path]
        elif kind == "dir":
            cmd += ["--perms", "0755", "--dir", path]
        elif kind == "show":
            cmd += ["--ro-bind", path, path]
        else:
            cmd += ["--bind", path, path]
    for f in sorted(hidden_files):
        cmd += ["--ro-bind", "/dev/null", f]
    # hidden folders stay empty and read-only (a write there fails instead of vanishing)
    for path in sorted(hidden, key=lambda p: -p.count("/")):
        cmd += ["--remount-ro", path]
    cmd += ["--chdir", cwd, "--"]
    return cmd + kernel_inner


def _outer(args, kernel: list[str]) -> int:
    cwd = os.getcwd()
    private = Path(tempfile.mkdtemp(prefix="course-sandbox-"))
    links: list[Path] = []
    try:
        kernel, links, ipc = _private_connection(kernel, private)
        fonts = private / "fonts"
        fonts.mkdir()
        try:  # matplotlib's font list, so that no check cell prints 'building the font cache'
            for f in _matplotlib_cache().glob("fontlist-*.json"):
                shutil.copy(f, fonts / f.name)
        except OSError:
            pass
        bwrap = args.isolation == "bwrap"
        as_root = os.geteuid() == 0
        limits = Limits(args.memory_mb, args.cpu_seconds, args.processes, args.file_mb)
        inner = [sys.executable, str(Path(__file__).resolve()), "--inner", *limits.args(),
                 "--scratch", "/tmp/.sandbox" if bwrap else str(private / "scratch")]
        inner += ["--fonts", str(fonts)]
        if bwrap and as_root:
            inner += ["--drop-to", str(SANDBOX_UID), "--own", cwd, "--own", str(private)]
        inner += ["--", *kernel]
        env = dict(os.environ)
        # ipykernel exits when its parent's pid is 1, which is bubblewrap's init in a PID
        # namespace; this launcher watches the grader instead (below)
        env.pop("JPY_PARENT_PID", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["COURSE_SANDBOX"] = args.isolation
        if bwrap:
            cmd = bwrap_command(inner, cwd=cwd, private=private, hide=args.hide, show=args.show,
                                network=not ipc, as_root=as_root, tmp_mb=args.file_mb)
            if not ipc:
                print("[sandbox] the kernel uses TCP: its network is NOT isolated "
                      "(set KernelManager.transport = 'ipc')", file=sys.stderr, flush=True)
        elif args.isolation == "netns" and ipc:
            cmd = ["unshare", "--net", "--", *inner]
        else:
            cmd = inner
        # Interrupts reach the kernel as control messages; a SIGINT sent to this process group
        # must not kill the launcher or bubblewrap (the kernel resets it to the default).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # the kernel's own output goes to its cells; what it prints before (a banner) is dropped
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL)

        def forward(signum, _frame):
            try:
                proc.send_signal(signum)
            except OSError:
                pass

        signal.signal(signal.SIGTERM, forward)
        parent = os.getppid()
        while True:
            try:
                return proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                if os.getppid() != parent:  # the grader is gone: end the sandbox with it
                    proc.kill()
    finally:
        for link in links:
            try:
                link.unlink()
            except OSError:
                pass
        shutil.rmtree(private, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("usage: sandbox.py [options] -- KERNEL COMMAND", file=sys.stderr)
        return 2
    split = argv.index("--")
    ap = argparse.ArgumentParser(prog="sandbox.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--isolation", choices=ISOLATIONS, default="rlimits")
    ap.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB)
    ap.add_argument("--cpu-seconds", type=int, default=DEFAULT_CPU_SECONDS)
    ap.add_argument("--processes", type=int, default=DEFAULT_PROCESSES)
    ap.add_argument("--file-mb", type=int, default=DEFAULT_FILE_MB)
    ap.add_argument("--hide", action="append", default=[])
    ap.add_argument("--show", action="append", default=[])
    ap.add_argument("--scratch", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--fonts", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--drop-to", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--own", action="append", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args(argv[:split])
    kernel = argv[split + 1:]
    if not kernel:
        ap.error("no kernel command after --")
    return _inner(args, kernel) if args.inner else _outer(args, kernel)


if __name__ == "__main__":
    sys.exit(main())
