"""port_in_use, which 'up' (before it starts) and doctor (while stopped) both ask."""

from __future__ import annotations

import socket

from coursehub.ports import port_in_use


def test_a_listening_port_and_a_port_bound_without_listening_are_in_use():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert port_in_use(port)  # bound, not listening: a bind would fail
        s.listen()
        assert port_in_use(port)
    assert not port_in_use(port)  # given back
