"""`ecom up` against a port that frees late, a port that stays taken and a stale pid file, on a private
stack (own state folder and ports): Kafka is the service started, it needs nothing but Java."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time

import psutil
import pytest

from kernel.errors import EcomError
from stack import services as stack_mod

# no `stack` mark: these tests start what they need on the private stack, never the shared one


def _kafka(settings) -> stack_mod.Service:
    return next(svc for svc in stack_mod.services(settings) if svc.name == "kafka")


def _started(svc) -> None:
    stack_mod._wait(svc, time.monotonic() + 120, lambda m: None)
    assert svc.healthy()


def _bound_not_listening(host: str, port: int) -> socket.socket:
    """A socket that holds a port without listening: a connect finds nothing there, a bind fails."""
    sock = socket.socket()
    sock.bind((host, port))
    return sock


@pytest.mark.slow
def test_a_port_that_frees_late_is_waited_for(private_settings, monkeypatch):
    # the private stack (tests/stack/conftest.py), with a longer wait than its 3 s
    monkeypatch.setenv("ECOM_PORT_WAIT_S", "30")
    from kernel.settings import load_settings

    s = load_settings()
    holder = _bound_not_listening(s.kafka.host, s.kafka.port)
    assert not stack_mod.port_open(s.kafka.host, s.kafka.port)  # nothing listens: a connect check passes
    threading.Timer(3.0, holder.close).start()
    kafka = _kafka(s)
    t0 = time.monotonic()
    kafka.start()
    assert time.monotonic() - t0 >= 2.5, "started while the port was still taken"
    _started(kafka)


def test_a_port_that_stays_taken_names_its_holder(private_settings):
    s = private_settings  # ECOM_PORT_WAIT_S=3
    with _bound_not_listening(s.kafka.host, s.kafka.port) as holder:
        holder.listen(1)  # a bound-only socket is in no /proc/net/tcp table: nobody can name its owner
        t0 = time.monotonic()
        with pytest.raises(EcomError) as err:
            _kafka(s).start()
        waited = time.monotonic() - t0
    msg = str(err.value)
    assert 2.5 <= waited < 15, waited
    assert msg.startswith("kafka:") and "\n" not in msg and f"pid {os.getpid()}" in msg, msg


@pytest.mark.slow
def test_a_stale_pid_file_neither_blocks_the_start_nor_gets_another_process_killed(private_settings):
    s = private_settings
    kafka = _kafka(s)
    bystander = subprocess.Popen(["sleep", "600"])  # noqa: S603,S607
    try:
        s.run_dir.mkdir(parents=True, exist_ok=True)
        # the pid of a live process that is not ours (a reboot reused it), recorded with another start time
        kafka.pid_file.write_text(f"{bystander.pid} 12345.00\n")
        assert not kafka.running()
        # the old format (pid only) pointing at a process that does not run our program
        kafka.pid_file.write_text(f"{bystander.pid}\n")
        assert not kafka.running()
        kafka.start()
        _started(kafka)
        assert kafka.pid() != bystander.pid
        kafka.stop()
        kafka.pid_file.write_text(f"{bystander.pid}\n")
        kafka.stop()  # must not kill the process that inherited the number
        assert psutil.Process(bystander.pid).is_running() and bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
