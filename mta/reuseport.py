"""Listening sockets that several processes bind at once (SO_REUSEPORT): the kernel spreads
incoming connections over them. The tracker and the control API scale across cores this way."""

from __future__ import annotations

import socket

from mta.config import parse_hostport

BACKLOG = 4096


def listening_socket(address: str, default_port: int, key: str) -> socket.socket:
    """A non-blocking socket listening on `address` ("host:port"; `key` names the config key
    in errors), shareable with other processes binding the same address."""
    host, port = parse_hostport(address, default_port, key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock
