"""What to say when a server of the command line cannot listen.

Shared by every command that binds a socket (``serve``, ``demo``,
``local-agentcore``, ``demo-agent``, ``local-apigw``), on the standard
library alone, so that reporting a bind failure imports no server.
"""

from __future__ import annotations

import errno
import socket

__all__ = ["listen_error"]


def listen_error(
    host: str,
    port: int,
    exc: OSError,
    *,
    host_setting: str = "BRIDGE_HOST (--host)",
    port_setting: str = "--port or BRIDGE_PORT",
) -> str:
    """What to tell the user when a server cannot listen, naming the setting.

    The address is checked only by binding it: a host name that does not
    resolve, an address of another machine and a privileged port all fail
    there, and each deserves a sentence rather than a traceback.
    """
    where = f"{host} port {port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use; stop the program using "
            f"it or choose another port with {port_setting}"
        )
    if isinstance(exc, socket.gaierror):
        return (
            f"cannot listen on {where}: {host_setting} {host!r} is not an IP "
            "address or a host name that resolves"
        )
    # From Python 3.13, asyncio skips an address that cannot be assigned
    # (taking it for a disabled address family) and, with none left, raises
    # an OSError without an errno.
    not_assignable = exc.errno is None and "could not bind on any address" in str(exc)
    if exc.errno == errno.EADDRNOTAVAIL or not_assignable:
        return (
            f"cannot listen on {where}: {host_setting} is not an address of "
            "this machine (0.0.0.0 listens on every interface)"
        )
    if exc.errno == errno.EACCES:
        return (
            f"cannot listen on {where}: permission denied (ports below 1024 "
            f"usually need privileges); choose another port with {port_setting}"
        )
    return (
        f"cannot listen on {where} ({exc.strerror or exc}); check {host_setting} "
        f"and {port_setting}"
    )
