"""The autograder's sandbox (assignments/sandbox.py) holds against hostile submissions.

One class is graded in ONE ``grade`` call: a correct submission and six hostile ones, each
hostile attempt placed in the first exercise's solution cell (before a correct function):

- memory: allocates 3x the memory limit;
- fork: starts 4x the process limit, every child staying alive;
- file: writes a file 4x the file-size limit;
- net: connects to a TCP server this test runs on 127.0.0.1 (which must receive nothing);
- write: writes a world-writable canary beside the repository (only the read-only file system
  protects it), a canary in the repository's build/, the grader's home (the test's and the real
  one), the course repository and course_lib, the nbgrader course folder (gradebook, instructor
  source), the instructor notebooks and another student's submission;
- read: reads the grader's home, the instructor's source notebook (solutions and hidden tests)
  and another student's submission.

The class lives in the repository's build/ (as a real course does), not under /tmp, which the
sandbox replaces by a private one as a whole.

Each hostile exercise is graded failed with the sandbox's reason, the rest of its notebook is still
graded, the correct submission gets full marks, and nothing outside the submissions' own
folders changes. The module is skipped, with the reason, where bubblewrap is not usable
(``python3 course.py test`` installs it with apt when run as root).
"""

from __future__ import annotations

import csv
import os
import pwd
import shutil
import socket
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from assignments import grade, inject_solutions, release, sandbox  # noqa: E402

from homework_fixtures import make_fixture, set_source, sha, tree_state  # noqa: E402

LIMITS = sandbox.Limits(memory_mb=1024, cpu_seconds=300, processes=64, file_mb=16)
CELL_TIMEOUT = 60
AFFINE_OK = "def affine(x):\n    return 2 * x + 1\n"


def _attack(code: str) -> str:
    """A solution cell: the attack, then a correct function (so only the attack can fail it)."""
    return code.rstrip() + "\n\n" + AFFINE_OK


MEMORY = f'''\
import numpy as np
hog = np.ones(3 * {LIMITS.memory_mb} * 2**20 // 8)  # 3x the limit, every page touched
'''

SLEEPER = "3617"  # children of the fork bomb run `sleep 3617`: easy to find if one survives
FORK = f'''\
import os
children = []
for _ in range(4 * {LIMITS.processes}):
    pid = os.fork()
    if pid == 0:  # every child leaves the kernel's process group and stays alive
        try:
            os.setsid()
            os.execvp("sleep", ["sleep", "{SLEEPER}"])
        finally:
            os._exit(1)
    children.append(pid)
'''

BIGFILE = f'''\
chunk = b"x" * 2**20
with open("big.bin", "wb") as fh:
    for _ in range(4 * {LIMITS.file_mb}):
        fh.write(chunk)
'''

NET = '''\
import socket
socket.create_connection(("127.0.0.1", {port}), timeout=10).sendall(b"stolen answers")
'''

WRITE = '''\
import os
targets = {targets!r}
errors = []
for path, mode in targets:
    try:
        with open(path, mode) as fh:
            fh.write("pwned")
    except OSError as exc:
        errors.append(exc)
if errors:
    raise errors[0]
'''

READ = '''\
stolen = [open(p).read() for p in {paths!r}]
print(stolen)
'''


@pytest.fixture(scope="module")
def isolation():
    iso, warns = sandbox.probe()
    if iso != "bwrap":
        pytest.skip("the sandbox is degraded on this machine: " + "; ".join(warns))
    return iso


class Listener:
    """A TCP server on 127.0.0.1 that records every connection it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                continue
            self.accepted.append(addr)
            conn.close()

    def close(self):
        self._stop = True
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture(scope="module")
def hostile_class(isolation):
    # Not under /tmp, which the sandbox replaces by a private one as a whole: like a real course,
    # everything lives in the repository (build/), so that hiding folders is what protects it.
    (ROOT / "build").mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="test-sandbox-", dir=ROOT / "build"))
    base.chmod(0o755)  # readable by anyone, as folders usually are: hiding must protect it
    try:
        yield from _hostile_class(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _hostile_class(base):
    nb_dir = base / "notebooks"
    src = make_fixture(nb_dir)
    course = base / "course"
    [student] = release(None, out=course, notebooks_dir=nb_dir)
    released = nbformat.read(str(student), as_version=4)
    complete = inject_solutions(released, nbformat.read(str(src), as_version=4))
    subs = base / "submissions"

    # the grader's home for this test (the sandbox hides $HOME), a canary outside everything
    home = base / "grader-home"
    home.mkdir()
    (home / "notes.txt").write_text("the grader's own file\n")
    canary = base / "canary.txt"
    canary.write_text("original\n")
    token = uuid.uuid4().hex[:8]
    # a world-writable file beside the repository, in no hidden folder: only the read-only view
    # of the file system protects it
    open_dir = ROOT.parent / f".course-sandbox-canary-{token}"
    open_dir.mkdir(mode=0o777)
    open_dir.chmod(0o777)
    open_canary = open_dir / "canary.txt"
    open_canary.write_text("original\n")
    open_canary.chmod(0o666)
    real_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    planted = [home / f"pwned-{token}", real_home / f"pwned-{token}", ROOT / f"pwned-{token}.txt"]
    listener = Listener()

    attacks = {
        "mallory_memory": MEMORY,
        "mallory_fork": FORK,
        "mallory_file": BIGFILE,
        "mallory_net": NET.format(port=listener.port),
        "mallory_write": WRITE.format(targets=[
            (str(open_canary), "w"), (str(canary), "w"), (str(planted[0]), "w"), (str(planted[1]), "w"),
            (str(planted[2]), "w"), (str(course / "gradebook.db"), "a"),
            (str(course / "source" / "07_fixture" / "07_fixture.ipynb"), "w"),
            (str(src), "w"), (str(subs / "alice" / "07_fixture.ipynb"), "w"),
            (str(ROOT / "course_lib" / "grading.py"), "a")]),
        "mallory_read": READ.format(paths=[
            str(home / "notes.txt"), str(course / "source" / "07_fixture" / "07_fixture.ipynb"),
            str(subs / "alice" / "07_fixture.ipynb")]),
    }
    (subs / "alice").mkdir(parents=True)
    nbformat.write(complete, str(subs / "alice" / "07_fixture.ipynb"))
    for name, code in attacks.items():
        (subs / name).mkdir()
        nbformat.write(set_source(complete, "affine", _attack(code)), str(subs / name / "07_fixture.ipynb"))

    watched = {"repository": ROOT, "notebooks": nb_dir, "submissions": subs, "home": home,
               "source": course / "source", "release": course / "release"}
    before = {k: tree_state(p) for k, p in watched.items()}
    before_hash = {"open canary": sha(open_canary), "open dir": sorted(os.listdir(open_dir)),
                   "canary": sha(canary), "grading.py": sha(ROOT / "course_lib" / "grading.py"),
                   "source": sha(course / "source" / "07_fixture" / "07_fixture.ipynb")}
    grading_py = (ROOT / "course_lib" / "grading.py").read_bytes()
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        report = grade(subs, out=course, notebooks_dir=nb_dir, timeout=CELL_TIMEOUT, sandbox=LIMITS)
        after = {k: tree_state(p) for k, p in watched.items()}
        after_hash = {"open canary": sha(open_canary), "open dir": sorted(os.listdir(open_dir)),
                      "canary": sha(canary), "grading.py": sha(ROOT / "course_lib" / "grading.py"),
                      "source": sha(course / "source" / "07_fixture" / "07_fixture.ipynb")}
    finally:
        if old_home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old_home
        listener.close()
        # undo what a broken sandbox let through (the tests below then fail)
        found = [p for p in planted if p.exists()]
        for p in found:
            p.unlink()
        if (ROOT / "course_lib" / "grading.py").read_bytes() != grading_py:
            (ROOT / "course_lib" / "grading.py").write_bytes(grading_py)
        shutil.rmtree(open_dir, ignore_errors=True)
        survivors = _sleepers()
        for pid in survivors:  # ours: the fork bomb's children
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    yield {"report": report, "course": course, "before": before, "after": after,
            "before_hash": before_hash, "after_hash": after_hash, "planted": found,
            "listener": listener, "subs": subs, "survivors": survivors}


def _sleepers() -> list[int]:
    import subprocess

    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(ln.split()[0]) for ln in out.splitlines()[1:] if ln.split()[1:] == ["sleep", SLEEPER]]


EXPECTED = {  # student: words in the reason of the failed first exercise (a tuple: any of them)
    "mallory_memory": ["MemoryError", f"{LIMITS.memory_mb} MB of memory"],
    "mallory_fork": ["Resource temporarily unavailable", f"{LIMITS.processes} processes"],
    "mallory_file": ["File too large", f"{LIMITS.file_mb} MB"],
    "mallory_net": ["no network"],
    "mallory_write": [("Read-only file system", "Permission denied"), "own folder"],
    "mallory_read": ["No such file"],
}


def _alternatives(word):
    return word if isinstance(word, tuple) else (word,)


def _expected(student):
    """EXPECTED[student]; the write attack's first target (the canary beside the repository) is
    hidden rather than read-only when the repository sits in a private folder of the sandbox (a
    clone under /tmp, as ../shared/tools/fresh-check makes): then it is not found at all."""
    if student == "mallory_write" and any(ROOT.parent == Path(t) or Path(t) in ROOT.parent.parents
                                          for t in sandbox.PRIVATE_TMP):
        return ["No such file or directory"]
    return EXPECTED[student]


def test_correct_submission_unaffected(hostile_class):
    rows = [r for r in hostile_class["report"].rows if r.student == "alice"]
    assert [(r.exercise, r.score, r.status) for r in rows] == [("affine", 2, "passed"),
                                                               ("square", 3, "passed")], rows


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_hostile_submission_fails_with_reason(hostile_class, student):
    got = {r.exercise: r for r in hostile_class["report"].rows if r.student == student}
    affine = got["affine"]
    assert (affine.score, affine.status) == (0, "failed"), affine
    for word in _expected(student):
        assert any(w in affine.reason for w in _alternatives(word)), (student, affine.reason)
    # the rest of the notebook is still graded
    assert (got["square"].score, got["square"].status) == (3, "passed"), got["square"]


def test_reasons_reach_grades_csv(hostile_class):
    with open(hostile_class["report"].grades_csv) as fh:
        rows = {(r["student"], r["exercise"]): r for r in csv.DictReader(fh)}
    for student in EXPECTED:
        words = _expected(student)
        r = rows[(student, "affine")]
        assert r["status"] == "failed", r
        assert all(any(w in r["reason"] for w in _alternatives(word)) for word in words), r


def test_no_network_connection_arrived(hostile_class):
    assert hostile_class["listener"].accepted == []


def test_nothing_outside_the_submission_folders_changed(hostile_class):
    h = hostile_class
    assert h["planted"] == [], f"the sandbox let a submission create {h['planted']}"
    assert h["after_hash"] == h["before_hash"]
    for key in h["before"]:
        assert h["after"][key] == h["before"][key], f"{key} changed"


def test_secrets_not_in_outputs(hostile_class):
    """The instructor's source (with its solution delimiters) was not readable."""
    graded = hostile_class["course"] / "autograded" / "mallory_read" / "07_fixture" / "07_fixture.ipynb"
    nb = nbformat.read(str(graded), as_version=4)
    outputs = str([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"])
    assert "BEGIN SOLUTION" not in outputs and "the grader's own file" not in outputs


def test_sandbox_leaves_no_process_or_socket_behind(hostile_class):
    """The fork bomb's children (in their own sessions) died with its sandbox; the sockets'
    links were removed."""
    assert hostile_class["survivors"] == [], "processes of the fork bomb outlived its kernel"
    links = Path(tempfile.gettempdir()) / f"course-sandbox-{os.getuid()}"
    mine = list(links.glob(f"kernel-{os.getpid()}-*"))  # this process graded the class
    assert not mine, mine


# ---------------------------------------------------------------------------------------------
# Without a kernel: the command line, the kernelspec, the degraded modes
# ---------------------------------------------------------------------------------------------


def test_bwrap_command_orders_nested_mounts(tmp_path):
    repo = tmp_path / "repo"
    (repo / "course_lib").mkdir(parents=True)
    (repo / "build" / "nbgrader" / "autograded" / "ann" / "01").mkdir(parents=True)
    cwd = repo / "build" / "nbgrader" / "autograded" / "ann" / "01"
    cmd = sandbox.bwrap_command(["k"], cwd=str(cwd), private=tmp_path / "p",
                                hide=[repo, repo / "build" / "nbgrader"],
                                show=[repo / "course_lib"], as_root=False)
    (tmp_path / "p").mkdir()
    flat = " ".join(cmd)
    assert "--unshare-net" in cmd and "--unshare-user" in cmd and "--cap-drop ALL" in flat
    # the repository is hidden, course_lib shown inside it, the submission writable inside the
    # hidden course folder, each after what contains it
    i_hide = flat.index(f"--tmpfs {repo} ")
    i_show = flat.index(f"--ro-bind {repo / 'course_lib'} ")
    i_course = flat.index(f"--tmpfs {repo / 'build' / 'nbgrader'} ")
    i_rw = flat.index(f"--bind {cwd} {cwd}")
    assert i_hide < i_show and i_hide < i_course < i_rw
    assert f"--remount-ro {repo}" in flat and "--remount-ro /root" in flat
    assert cmd[-2:] == ["--", "k"]


def test_kernelspec_names_the_limits():
    spec = sandbox.kernelspec(LIMITS, "bwrap", hide=["/x"], show=["/y"])
    argv = spec["argv"]
    assert argv[argv.index("--memory-mb") + 1] == str(LIMITS.memory_mb)
    assert argv[argv.index("--processes") + 1] == str(LIMITS.processes)
    assert "{connection_file}" in argv and spec["interrupt_mode"] == "message"
    with pytest.raises(ValueError, match="memory_mb: expected a positive int"):
        sandbox.Limits(memory_mb=0)
    with pytest.raises(ValueError, match="isolation"):
        sandbox.kernelspec(LIMITS, "chroot")


def test_degrades_with_a_clear_warning(monkeypatch):
    real_which = sandbox.shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None if name == "bwrap" else real_which(name))
    iso, warns = sandbox.probe()
    assert iso in ("netns", "rlimits")
    assert warns and "bubblewrap" in warns[0] and "apt-get install bubblewrap" in warns[0]
    assert "write wherever the grading account can" in warns[0]


def test_grade_config_points_nbgrader_at_the_sandbox(tmp_path):
    from assignments.pipeline import SANDBOX_KERNEL, _write_config

    iso, _ = _write_config(tmp_path / "course", 30, LIMITS)
    text = (tmp_path / "course" / "nbgrader_config.py").read_text()
    if iso is None:
        pytest.skip("no sandbox mechanism on this system")
    assert f"c.Execute.kernel_name = {SANDBOX_KERNEL!r}" in text
    assert 'c.KernelManager.transport = "ipc"' in text
    spec = tmp_path / "course" / "sandbox" / "kernels" / SANDBOX_KERNEL / "kernel.json"
    assert str(LIMITS.memory_mb) in spec.read_text()
    _write_config(tmp_path / "course", 30, None)
    assert "NOT sandboxed" in (tmp_path / "course" / "nbgrader_config.py").read_text()


def test_cpu_limit_stops_a_runaway_kernel(isolation):
    """A loop that outlasts the CPU-time limit (but not the cell timeout) gets its kernel killed;
    the submission is 'not graded' and the reason names the limit."""
    (ROOT / "build").mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="test-sandbox-cpu-", dir=ROOT / "build"))
    try:
        src = make_fixture(base / "notebooks")
        [student] = release(None, out=base / "course", notebooks_dir=base / "notebooks")
        complete = inject_solutions(nbformat.read(str(student), as_version=4),
                                    nbformat.read(str(src), as_version=4))
        (base / "subs" / "spinner").mkdir(parents=True)
        nbformat.write(set_source(complete, "affine", _attack("while True:\n    pass\n")),
                       str(base / "subs" / "spinner" / "07_fixture.ipynb"))
        limits = sandbox.Limits(memory_mb=1024, cpu_seconds=10, processes=64, file_mb=16)
        report = grade(base / "subs", out=base / "course", notebooks_dir=base / "notebooks",
                       timeout=600, feedback=False, sandbox=limits)
        row = report.score("spinner", "07_fixture", "affine")
        assert row.status == "not graded" and "kernel died" in row.reason, row
        assert "10 s of CPU time" in row.reason, row
    finally:
        shutil.rmtree(base, ignore_errors=True)
