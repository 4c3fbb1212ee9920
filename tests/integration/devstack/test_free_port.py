"""``free_port`` never hands out one port twice in a process: the kernel repeats free ports
between consecutive ``bind(0)`` calls, and two servers started together got the same one."""

from __future__ import annotations

import socket

from devstack.embedded_redis import free_port


def test_free_port_hands_out_distinct_ports_that_are_free() -> None:
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
    # each is free: a listener binds it (without SO_REUSEADDR, so a port in use would fail)
    for port in ports[:20]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
