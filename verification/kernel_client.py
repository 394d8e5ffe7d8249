"""A kernel client for nbclient that cannot lose the wake-up of a shell reply.

The stall it prevents (seen as ``python3 course.py test`` waiting for a whole cell timeout on a
loaded machine, client and kernel both idle): nbclient mimics JupyterLab's Output widget, so while
it waits for a cell's ``execute_reply`` it sends ``comm_msg`` updates to the kernel on the same
shell socket (every explorer of the course displays into an ``ipywidgets.Output``).
jupyter_client's ``Session.send`` writes such a message on a synchronous *shadow* of the client's
``zmq.asyncio`` socket. A send on a ZeroMQ socket processes the socket's pending commands, which
clears the edge-triggered file descriptor that announced the reply; the asyncio socket never learns
of it, so the poll that awaits the reply is never woken although the reply sits in the socket. Under
CPU load the client handles IOPub late, after the reply has arrived, and the window is hit often:
with CPU burners beside it, 22 of 64 executions of notebook 00 stalled at its first explorer (12 of
20 in fresh processes), none of 40 with this client alongside them; in every stall the waiting
socket reported ``EVENTS = POLLIN | POLLOUT`` with its poll pending, the kernel had nothing queued,
and making the client re-check the socket's events ended the stall at once. The poll sleeps until
its own timeout, nbclient's whole cell timeout, and only then finds the reply.
Upstream: jupyter/nbclient#312 and voila-dashboards/voila#1428 (the symptom, open),
jupyter/jupyter_client#1059 (the shadow send, open); ipython/ipykernel#1529 fixed the same mistake on
the kernel's side (in ipykernel 7.4). No released jupyter_client avoids it (every version that
JupyterLab 4's server accepts shadows the socket).

The fix uses pyzmq's documented rule for edge-triggered sockets: after the send, read ``EVENTS``
through the asyncio socket itself, which makes pyzmq re-check and wake every pending poll and
receive. :class:`AsyncKernelClient` does that on every channel it sends on;
:class:`AsyncKernelManager` creates it, and :func:`notebook_client` builds an nbclient
``NotebookClient`` on it. Elsewhere select it by configuration:
``--AsyncKernelManager.client_class=verification.kernel_client.AsyncKernelClient`` (nbconvert) or
``c.AsyncKernelManager.client_class = ...`` (nbgrader's config).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import nbclient
import zmq
from jupyter_client.asynchronous.client import AsyncKernelClient as _AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager as _AsyncKernelManager
from nbclient.exceptions import CellTimeoutError
from traitlets import DottedObjectName, Type, default

from verification.limits import CELL_TIMEOUT

CLIENT_CLASS = "verification.kernel_client.AsyncKernelClient"


class WakingChannel(AsyncZMQSocketChannel):
    """An asyncio channel whose ``send`` re-arms the socket's pending polls and receives."""

    def send(self, msg: dict[str, Any]) -> None:
        super().send(msg)  # jupyter_client sends on a synchronous shadow of self.socket
        # Reading EVENTS through the asyncio socket schedules its waiters if a message is ready
        # (pyzmq's handling of edge-triggered sockets); the shadow send above may have consumed the
        # file descriptor's notification of that message.
        self.socket.get(zmq.EVENTS)


class AsyncKernelClient(_AsyncKernelClient):
    """jupyter_client's asyncio kernel client with :class:`WakingChannel` on every channel it
    sends on (shell, control, stdin)."""

    shell_channel_class = Type(WakingChannel)  # type: ignore[assignment]
    control_channel_class = Type(WakingChannel)  # type: ignore[assignment]
    stdin_channel_class = Type(WakingChannel)  # type: ignore[assignment]


class AsyncKernelManager(_AsyncKernelManager):
    """jupyter_client's asyncio kernel manager, handing out :class:`AsyncKernelClient`."""

    client_class = DottedObjectName(CLIENT_CLASS, config=True)
    client_factory = Type(klass=_AsyncKernelClient, default_value=AsyncKernelClient, config=True)


def kernel_cpu_seconds(km) -> float | None:
    """CPU time (user + system, seconds) the kernel process of ``km`` has used; None if unknown."""
    proc = getattr(getattr(km, "provisioner", None), "process", None)
    try:
        import psutil

        t = psutil.Process(proc.pid).cpu_times()
        return t.user + t.system
    except Exception:  # no local process (remote provisioner), psutil missing, process gone
        return None


class NotebookClient(nbclient.NotebookClient):
    """nbclient's ``NotebookClient`` on :class:`AsyncKernelManager`, whose cell timeout says which
    cell it was and whether the kernel was computing (a slow cell) or idle (a lost message: a
    stall)."""

    @default("kernel_manager_class")
    def _default_kernel_manager_class(self):
        return AsyncKernelManager

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        cpu0, t0 = kernel_cpu_seconds(self.km), time.monotonic()
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except CellTimeoutError as exc:
            raise CellTimeoutError(timeout_message(cell, cell_index, self.timeout, time.monotonic() - t0,
                                                   cpu0, kernel_cpu_seconds(self.km))) from exc


def timeout_message(cell, cell_index: int, limit, waited: float, cpu0, cpu1) -> str:
    """Why cell ``cell_index`` timed out: which cell, and whether the kernel computed meanwhile."""
    if cpu0 is None or cpu1 is None:
        why = "the kernel's CPU time is unknown"
    elif cpu1 - cpu0 < 0.02 * waited:  # a busy kernel gets far more, even on a loaded machine
        why = (f"the kernel used {cpu1 - cpu0:.1f} s of CPU in that time: it sat idle, waiting, so a "
               "message between client and kernel was lost (a stall) unless the cell itself waits "
               "(sleep, input, I/O)")
    else:
        why = (f"the kernel used {cpu1 - cpu0:.0f} s of CPU in that time: the cell was still "
               "computing (too slow for the limit, or an endless loop)")
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
    return (f"cell {cell_index} ({first[:80]!r}) did not finish within {limit} s (waited "
            f"{waited:.0f} s); {why}")


def notebook_client(nb, path: str | Path, *, timeout: int = CELL_TIMEOUT, **kwargs: Any):
    """An nbclient ``NotebookClient`` for ``nb`` run in folder ``path``, on :class:`AsyncKernelManager`.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        The notebook, executed in place.
    path : str or Path
        The kernel's working folder (the notebook's own folder, as in JupyterLab).
    timeout : int
        Seconds one cell may run (default :data:`CELL_TIMEOUT`); a cell running longer raises
        ``nbclient.exceptions.CellTimeoutError`` naming the cell and whether the kernel was busy.
    **kwargs
        Other ``NotebookClient`` options (``allow_errors``, ``kernel_name``, ...).
    """
    kwargs.setdefault("kernel_name", "python3")
    return NotebookClient(nb, timeout=timeout, resources={"metadata": {"path": str(path)}}, **kwargs)
