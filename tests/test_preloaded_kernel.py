"""tests/preloaded_kernel.py: the test run's kernels are forked from a server that imported torch, and are otherwise
the kernels a student gets — same paths, arguments, folder, plotting backend, nothing of the course imported —
and they can be interrupted, and do not outlive their launcher."""
import json
import subprocess
import time

import pytest

from notebook_runner import Kernel
from preloaded_kernel import SOCKET_VARIABLE, install, ordinary_environment

pytestmark = pytest.mark.notebook

LOOK = ("import json, os, sys\n"
        "import matplotlib.pyplot\n"
        "print(json.dumps({'path': sys.path, 'argv0': sys.argv[0], 'cwd': os.getcwd(),"
        " 'backend': matplotlib.get_backend(), 'course': 'retinanet_lite' in sys.modules,"
        " 'threads': os.environ.get('OMP_NUM_THREADS')}))\n")


def torch_at_start(kernel: Kernel) -> bool:
    """Whether torch was imported in a new kernel before its first cell (call before any other cell)."""
    error, text = kernel.run("import sys\nprint('torch' in sys.modules)")
    assert error is None, text
    return text.strip() == "True"


def look(kernel: Kernel) -> dict:
    """What a new kernel looks like from inside, and whether torch was imported before its first cell."""
    preloaded = torch_at_start(kernel)
    error, seen = kernel.run(LOOK)
    assert error is None, seen
    return {"torch at start": preloaded, **json.loads(seen)}


def test_a_preloaded_kernel_is_an_ordinary_kernel_with_torch_imported(start_kernel, tmp_path):
    preloaded = look(start_kernel(tmp_path))
    ordinary_kernel = Kernel(tmp_path, env=ordinary_environment())
    try:
        ordinary = look(ordinary_kernel)
    finally:
        ordinary_kernel.close()
    assert preloaded.pop("torch at start") and not ordinary.pop("torch at start")
    assert preloaded == ordinary and not preloaded["course"]


def test_a_preloaded_kernel_can_be_interrupted(start_kernel, tmp_path):
    kernel = start_kernel(tmp_path)
    request = kernel.client.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(60)", stop_on_error=False)
    # Interrupt only once the cell runs (before, ipykernel ignores SIGINT), then read the reply to *this* request:
    # the shell channel can still hold a kernel_info reply, as jupyter_client asks again every second while a
    # kernel starts. (With stop_on_error, ipykernel would abort, not run, a cell that comes just after the error.)
    assert next(replies(kernel.client.get_iopub_msg, request, "stream"))["text"] == "sleeping\n"
    kernel.manager.interrupt_kernel()
    reply = next(replies(kernel.client.get_shell_msg, request, "execute_reply"))
    assert reply.get("ename") == "KeyboardInterrupt", reply
    assert kernel.run("print(6 * 7)") == (None, "42\n"), "the kernel carries on after the interrupt"


def replies(get, request: str, kind: str, timeout: float = 30):
    """The contents of the messages of type ``kind`` that answer ``request`` (a message id), read with ``get``
    (a client's ``get_iopub_msg`` or ``get_shell_msg``); raises queue.Empty after ``timeout`` s without one."""
    while True:
        message = get(timeout=timeout)
        if message["parent_header"].get("msg_id") == request and message["msg_type"] == kind:
            yield message["content"]


def test_a_kernel_waits_for_a_server_still_importing_and_is_ordinary_without_one(tmp_path):
    environment = ordinary_environment()
    server = install(tmp_path / "kernels", environment)  # starts importing torch (seconds) now
    try:
        kernel = Kernel(tmp_path, env=environment)  # a launcher started at once: queued until the server is ready
        try:
            assert torch_at_start(kernel), "the launcher did not wait for the server: an ordinary kernel"
        finally:
            kernel.close()
    finally:
        server.terminate()
        server.wait()
    without_address = {name: value for name, value in environment.items() if name != SOCKET_VARIABLE}
    for env in (environment, without_address):  # the server is gone; the kernelspec used without install()
        kernel = Kernel(tmp_path, env=env)
        try:
            assert not torch_at_start(kernel) and kernel.run("print(6 * 7)") == (None, "42\n")
        finally:
            kernel.close()


def test_killing_the_launcher_ends_the_kernel(tmp_path):
    kernel = Kernel(tmp_path)
    error, pid = kernel.run("import os\nprint(os.getpid())")
    assert error is None and int(pid) != kernel.manager.provisioner.pid, "a forked kernel, not the launcher itself"
    kernel.close()  # kills the launcher (SIGKILL), as jupyter_client does when a kernel does not shut down
    deadline = time.monotonic() + 10
    while subprocess.run(["kill", "-0", pid.strip()], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, f"the kernel {pid.strip()} outlived its launcher"
        time.sleep(0.1)
