"""The listening socket several API processes share: bound once by the process that
starts them (`nico api`, `nico serve`), inherited by each child as a file descriptor."""

from __future__ import annotations

import socket

# The hidden option that hands a child the inherited socket's descriptor.
LISTEN_FD = "--listen-fd"


def listening_socket(host: str, port: int) -> socket.socket:
    """The API's listening socket, inheritable by the children."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def inherited_socket(fd: int) -> socket.socket:
    """The listening socket a child got from `supervise_api_workers`."""
    return socket.socket(fileno=fd)
