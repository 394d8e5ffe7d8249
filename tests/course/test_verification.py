"""The verification tools themselves: the notebook runner, robustness variants, the mutation list.

Running every mutation takes many minutes and is not part of this suite
(``python3 course.py mutations``); here we check that every planted mistake still applies to the
current source exactly once, so the list cannot rot silently when ``course_lib`` changes.
"""

from __future__ import annotations

import shutil

import nbformat
import pytest

from verification.mutations import ROOT, all_mutations, notebook_paths
from verification.robustness import Variant
from verification.run import failing_line, run_in_subprocess

MUTATIONS = all_mutations()


@pytest.mark.parametrize("m", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_mutation_applies_exactly_once(m, tmp_path):
    copy = tmp_path / "course_lib"
    shutil.copytree(ROOT / "course_lib", copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = (copy / m.file).read_text()
    m.apply(copy)
    after = (copy / m.file).read_text()
    assert after != before and m.old != m.new
    compile(after, m.file, "exec")                       # the mistake is still valid Python
    assert m.breaks and m.notebooks and m.tests
    assert notebook_paths(m.notebooks)
    for t in m.tests:
        assert (ROOT / t.split("::")[0]).exists(), t


def test_mutation_names_are_unique():
    names = [m.name for m in MUTATIONS]
    assert len(names) == len(set(names))


def test_mutation_that_does_not_apply_is_an_error(tmp_path):
    from verification.mutations import Mutation

    (tmp_path / "x.py").write_text("a = 1\na = 1\n")
    with pytest.raises(ValueError, match="exactly once.*found it 2 times"):
        Mutation("m", "x.py", "a = 1", "a = 2", "b", ("00",), ("tests",)).apply(tmp_path)


def test_mutation_table_keeps_each_result_on_one_row():
    from verification.mutations import Result, table

    m = MUTATIONS[0]
    failure = "04 cell 15: assert_close(a, b) [AssertionError: a | b\n\nMismatched]"
    text = table([Result(m, "tests/test_x.py::test_y", failure, 1.0)])
    rows = text.splitlines()
    assert len(rows) == 3 and rows[2].count(" | ") == 3                  # header, rule, one row of 4 cells
    assert "a \\| b Mismatched" in rows[2]


def test_variant_parsing():
    assert Variant.parse("3") == Variant(3)
    v = Variant.parse("1:default:t2")
    assert v == Variant(1, True, 2)
    assert v.env() == {"COURSE_SEED": "1", "ATEN_CPU_CAPABILITY": "default", "COURSE_THREADS": "2"}
    assert Variant.parse("0").env()["ATEN_CPU_CAPABILITY"] == ""   # removed from the environment
    for bad in ("-1", "x", "2:fast", "2:t0"):
        with pytest.raises(ValueError, match="variant"):
            Variant.parse(bad)


def test_failing_line_picks_the_assert_in_the_cell():
    tb = ("\x1b[0;31mAssertionError\x1b[0m Traceback\nCell In[3], line 2\n      1 y = 2\n"
          "\x1b[0;32m----> 2\x1b[0m assert x == 2, 'no'\n")
    assert failing_line(tb, "y = 2\nassert x == 2, 'no'") == "assert x == 2, 'no'"


def test_runner_reports_the_failing_assert_and_the_environment(tmp_path):
    cells = [nbformat.v4.new_code_cell("import os\nseed = int(os.environ['COURSE_SEED'])"),
             nbformat.v4.new_code_cell("print(seed)\nassert seed == 0, f'seed is {seed}'")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, str(path))
    assert run_in_subprocess(path, {"COURSE_SEED": "0"}, timeout=120).ok
    out = run_in_subprocess(path, {"COURSE_SEED": "4"}, timeout=120)
    assert not out.ok and out.cell == 1
    assert out.line == "assert seed == 0, f'seed is {seed}'" and out.error == "AssertionError: seed is 4"


def test_kernels_get_passive_openmp_waiting_unless_told_otherwise(tmp_path, monkeypatch):
    """verification.limits.KERNEL_ENV reaches the kernel; a value already set is kept."""
    cells = [nbformat.v4.new_code_cell("import os\nassert os.environ.get('OMP_WAIT_POLICY') == "
                                       "os.environ['EXPECTED'], os.environ.get('OMP_WAIT_POLICY')")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, str(path))
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert run_in_subprocess(path, {"EXPECTED": "PASSIVE"}, timeout=120).ok
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert run_in_subprocess(path, {"EXPECTED": "ACTIVE"}, timeout=120).ok


# ----------------------------------------------------------------------------------------------
# Limits and the kernel client (verification/limits.py, verification/kernel_client.py)
# ----------------------------------------------------------------------------------------------


def test_pytest_timeout_is_the_documented_limit():
    import tomllib

    from verification.limits import CELL_TIMEOUT, NOTEBOOK_TIMEOUT, TEST_TIMEOUT

    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert int(ini["timeout"]) == TEST_TIMEOUT
    assert CELL_TIMEOUT < TEST_TIMEOUT < NOTEBOOK_TIMEOUT  # nbval's cell limit fires first


def _lost_wakeup(channel_class) -> bool:
    """Reproduce the lost wake-up deterministically: a reply reaches the client's shell socket
    while a poll for it is pending, then the client sends on the same socket before its event loop
    runs (what nbclient's Output widget stand-in does). True if the pending poll missed the reply:
    it then sleeps until its own timeout (in nbclient: the whole cell timeout) and only then finds
    the reply."""
    import asyncio
    import time

    import zmq
    import zmq.asyncio
    from jupyter_client.session import Session

    async def scenario() -> bool:
        ctx = zmq.asyncio.Context()
        kernel = ctx.socket(zmq.ROUTER)  # stands in for the kernel's shell socket
        port = kernel.bind_to_random_port("tcp://127.0.0.1")
        client_sock = ctx.socket(zmq.DEALER)
        client_sock.connect(f"tcp://127.0.0.1:{port}")
        session = Session(key=b"k")
        channel = channel_class(client_sock, session)
        try:
            channel.send(session.msg("execute_request", {"code": "1"}))
            idents, _ = session.feed_identities(await kernel.recv_multipart())
            waiting = asyncio.ensure_future(channel.get_msg(timeout=30))
            await asyncio.sleep(0.05)                  # the poll for the reply is now pending
            session.send(kernel, "execute_reply", {"status": "ok"}, ident=idents)
            time.sleep(0.3)                            # the reply arrives; the loop is not running
            channel.send(session.msg("comm_msg", {"data": {}}))  # the send that drains the edge
            try:
                reply = await asyncio.wait_for(waiting, 2)
            except asyncio.TimeoutError:               # still asleep although the reply is there
                return True
            assert reply["msg_type"] == "execute_reply"
            return False
        finally:
            client_sock.close(0)
            kernel.close(0)
            ctx.term()

    return asyncio.run(scenario())


def test_kernel_client_channel_never_loses_a_replys_wakeup():
    from verification.kernel_client import WakingChannel

    assert not any(_lost_wakeup(WakingChannel) for _ in range(3))


def test_jupyter_clients_own_channel_still_loses_it():
    """The reason verification/kernel_client.py exists; when this starts to pass upstream the
    workaround can go (the test then skips and says so)."""
    from jupyter_client.channels import AsyncZMQSocketChannel

    if not _lost_wakeup(AsyncZMQSocketChannel):
        pytest.skip("jupyter_client's asyncio channel no longer loses a reply's wake-up: "
                    "verification/kernel_client.py is no longer needed")


def test_every_notebook_execution_uses_the_kernel_client():
    from verification.kernel_client import AsyncKernelClient, NotebookClient, notebook_client

    nb = nbformat.v4.new_notebook()
    client = notebook_client(nb, ROOT)
    assert isinstance(client, NotebookClient)
    assert client.kernel_manager_class(kernel_name="python3").client_factory is AsyncKernelClient
    for path in ["tests/course/test_homework.py", "benchmarks/notebook_times.py", "verification/run.py"]:
        assert "notebook_client(" in (ROOT / path).read_text(), path
    for path in ["course.py", "assignments/pipeline.py"]:
        assert "verification.kernel_client.AsyncKernelClient" in (ROOT / path).read_text(), path


STALL = '''\
k = get_ipython().kernel
_send = k.session.send
def _drop_execute_reply(stream, msg_or_type, *args, **kwargs):
    kind = msg_or_type if isinstance(msg_or_type, str) else msg_or_type["header"]["msg_type"]
    # stream None: the message is built and returned, not sent
    return _send(None if kind == "execute_reply" else stream, msg_or_type, *args, **kwargs)
k.session.send = _drop_execute_reply  # from now on the kernel never answers: a stall'''


def test_a_stalled_execution_fails_quickly_and_says_so(tmp_path):
    """A kernel that sits idle without answering (its execute_reply is lost) ends in a failure at
    the cell limit that names the cell and tells a stall from a slow cell."""
    cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(STALL),
             nbformat.v4.new_code_cell("print('never reached')")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "stall.ipynb"
    nbformat.write(nb, str(path))
    out = run_in_subprocess(path, timeout=10, total=120)
    assert not out.ok and out.cell == 1, out
    assert out.error.startswith("CellTimeoutError: cell 1 ('k = get_ipython().kernel') did not "
                                "finish within 10 s"), out.error
    assert "it sat idle" in out.error and "stall" in out.error, out.error
    assert out.seconds < 60, out


def test_nbval_fails_a_cell_whose_reply_never_came(tmp_path):
    """nbval alone passes such a cell after its whole timeout; verification/nbval_stall.py (loaded
    by course.py test) fails it and says why."""
    import subprocess
    import sys

    cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(STALL)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path / "stall.ipynb"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "verification.nbval_stall", "-p",
                           "no:cacheprovider", "--nbval-lax", "--nbval-cell-timeout=10", "-q",
                           str(tmp_path / "stall.ipynb")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout[-2000:]
    assert "the kernel sent no reply within 10" in proc.stdout and "a stall" in proc.stdout


def test_a_slow_cell_is_told_apart_from_a_stall(tmp_path):
    cells = [nbformat.v4.new_code_cell("while True:\n    pass")]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "busy.ipynb"
    nbformat.write(nb, str(path))
    out = run_in_subprocess(path, timeout=8, total=120)
    assert not out.ok and out.cell == 0, out
    assert "the cell was still computing" in out.error, out.error
