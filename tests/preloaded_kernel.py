"""Jupyter kernels for the test run that start without spending ~4 s importing PyTorch first.

Every lesson run under ``make test`` (nbval, the student edition's Run All, ``make html``'s test, …) starts a
fresh Python kernel, and each spent ~4 processor-seconds importing torch and torchvision (which imports
``torch._dynamo``) before its first cell could do anything: over two minutes of processor time per run. So, as
tools/grade.py does for its grading processes, each test process starts one *server* that imports those
third-party packages (:data:`PRELOAD`) once and then forks a kernel per request. A forked kernel is a new process
whose user namespace is empty, exactly as after a restart: only ``sys.modules`` already holds those packages
(never ``retinanet_lite``, so a lesson that forgets one of our imports still fails as it would for a student;
not matplotlib, which picks its plotting backend when imported, nor ipykernel, which reads its parent process
then). tests/test_preloaded_kernel.py checks that such a kernel sees what an ordinary one does.

The pieces, all in this file:

* :func:`install` (called by conftest) writes a ``python3`` kernelspec whose command is this file, puts it first
  on ``JUPYTER_PATH``, opens the server's Unix socket and starts the server (``python preloaded_kernel.py serve
  FD``, the socket handed over as a file descriptor) in the background.
* The kernelspec's command, the *launcher* (``python preloaded_kernel.py -f CONNECTION_FILE``), is what
  jupyter_client starts and watches. It hands its arguments, working folder, environment and standard streams
  to the server, which forks the kernel; the launcher then forwards signals (interrupt, terminate) to it and
  exits when it exits. A launcher that comes while the server is still importing waits in the socket's queue
  (the socket exists from the start); if there is no server (it failed, or ended before answering), the
  launcher simply becomes an ordinary kernel (``python -m ipykernel_launcher``).
* The forked kernel exits if its launcher is killed, so no kernel outlives the test that started it.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import MutableMapping
from pathlib import Path

#: What a lesson's first cell spends most of its time importing (~4 s together); nothing of the course itself.
PRELOAD = ("torch", "torchvision", "numpy")
SOCKET_VARIABLE = "RETINANET_LITE_KERNEL_SERVER"  # the server's socket
ORDINARY_PATH_VARIABLE = "RETINANET_LITE_JUPYTER_PATH"  # JUPYTER_PATH before install()
KERNEL_LAUNCHER = importlib.util.find_spec("ipykernel_launcher").origin  # sys.argv[0] of an ordinary kernel
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def available() -> bool:
    """Linux only (it waits for processes by ``pidfd``); elsewhere the tests start ordinary kernels."""
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open")


def install(folder: Path, environ: MutableMapping[str, str] = os.environ) -> subprocess.Popen:
    """Write the kernelspec into ``folder``, put it first on ``JUPYTER_PATH`` in ``environ`` (by default this
    process's environment, which the kernels, servers and subprocesses it starts inherit) and start the server;
    returns the server's process (terminate it at the end)."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(Path(__file__).resolve()), "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel, preloaded for the tests)", "language": "python",
        "metadata": {"debugger": False}, "kernel_protocol_version": "5.5",
    }))
    path = folder / "server.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:  # the server's only, once handed over
        listener.bind(str(path))
        listener.listen()
        server = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "serve", str(listener.fileno())],
                                  stdin=subprocess.DEVNULL, pass_fds=[listener.fileno()])
    environ[SOCKET_VARIABLE] = str(path)
    environ[ORDINARY_PATH_VARIABLE] = environ.get("JUPYTER_PATH", "")
    environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(folder), environ.get("JUPYTER_PATH")]))
    return server


def ordinary_environment() -> dict[str, str]:
    """This process's environment as it was before :func:`install`: for what must start ordinary kernels
    (JupyterLab in the browser test, which stands for a student's own)."""
    env = dict(os.environ)
    if SOCKET_VARIABLE in env:
        del env[SOCKET_VARIABLE]
        env["JUPYTER_PATH"] = env.pop(ORDINARY_PATH_VARIABLE)
        if not env["JUPYTER_PATH"]:
            del env["JUPYTER_PATH"]
    return env


def serve(fd: int) -> None:
    """Import :data:`PRELOAD`, then fork one kernel per connection to the listening Unix socket ``fd``, forever
    (launchers that connect meanwhile wait in its queue)."""
    del sys.path[0]  # this file's folder (tests/): a kernel's sys.path is that of `python -m ipykernel_launcher`
    for name in PRELOAD:
        importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernels are reaped automatically
    server = socket.socket(fileno=fd)
    while True:
        connection, _ = server.accept()
        try:
            fork_kernel(server, connection)
        except OSError:  # the launcher went away mid-request: it starts no kernel, the next one may
            pass
        finally:
            connection.close()


def fork_kernel(server: socket.socket, connection: socket.socket) -> None:
    """Read a launcher's request (and its standard streams), fork the kernel, answer with the kernel's pid."""
    message, fds, _, _ = socket.recv_fds(connection, 1 << 16, 3)
    while chunk := connection.recv(1 << 16):  # the rest of the request, up to the launcher's end of writing
        message += chunk
    pid = os.fork()
    if pid == 0:
        try:
            server.close()
            connection.close()
            run_kernel(json.loads(message), fds)
        finally:
            os._exit(1)  # never back into the server's loop
    for fd in fds:
        os.close(fd)
    connection.sendall(str(pid).encode())


def run_kernel(request: dict, fds: list[int]) -> None:
    """In the forked child: become the kernel the launcher asked for (its streams, folder, environment,
    arguments) and leave when it ends or when the launcher is gone."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [request["argv0"], *request["argv"]]
    launcher = os.pidfd_open(request["launcher"])
    threading.Thread(target=exit_with, args=(launcher,), daemon=True).start()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def exit_with(pidfd: int) -> None:
    """Wait for the process behind ``pidfd`` to end, then end this one."""
    select.select([pidfd], [], [])
    os._exit(1)


def launch(arguments: list[str]) -> None:
    """The kernelspec's command: have the server fork the kernel, stand in for it until it ends."""
    address = os.environ.get(SOCKET_VARIABLE)  # set by install()
    try:
        kernel = ask_server(address, arguments) if address else None
    except (OSError, ValueError):  # the server has ended, or it ended before answering
        kernel = None
    if kernel is None:  # an ordinary kernel
        os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *arguments])
    for number in SIGNALS:
        signal.signal(number, lambda received, _: forward(received, kernel))
    with contextlib.suppress(ProcessLookupError):  # (a kernel that has ended already)
        select.select([os.pidfd_open(kernel)], [], [])


def ask_server(address: str, arguments: list[str]) -> int:
    """Send the server listening at ``address`` this launcher's request and standard streams; returns the pid of
    the kernel it forked (waiting, if the server is still importing)."""
    request = {"argv0": KERNEL_LAUNCHER, "argv": arguments, "cwd": os.getcwd(), "env": dict(os.environ),
               "launcher": os.getpid()}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(address)
        socket.send_fds(client, [json.dumps(request).encode()], [0, 1, 2])
        client.shutdown(socket.SHUT_WR)
        return int(client.recv(64))


def forward(number: int, pid: int) -> None:
    """Pass signal ``number`` on to process ``pid``, if it still runs."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]))
    else:
        launch(sys.argv[1:])
