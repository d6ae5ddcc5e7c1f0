"""A minimal websocket client for tests that must see exactly what the server sends."""

from __future__ import annotations

import socket
import time

__all__ = ["WS_PATH", "RawWebSocket"]

WS_PATH = "/_nicegui_ws/socket.io/?EIO=4&transport=websocket"
"""NiceGUI's socket, as its pages open it (engine.io over a websocket)."""


class RawWebSocket:
    """A websocket opened by hand from a plain socket: enough to see the server's frames and when it closes."""

    def __init__(self, address: str, port: int, headers: dict[str, str], path: str = WS_PATH) -> None:
        request = (f"GET {path} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
        request += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.sock = socket.create_connection((address, port), timeout=5)
        self.sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        self.status = head.split(b"\r\n", 1)[0].decode()
        self.buffer = bytearray(rest)

    def upgraded(self) -> bool:
        return self.status.split(" ")[1:2] == ["101"]

    def _need(self, n: int, deadline: float) -> None:
        while len(self.buffer) < n:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError
            self.buffer += chunk

    def frame(self, deadline: float) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame; EOFError when the server closed the connection."""
        self._need(2, deadline)
        opcode, length, offset = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
        if length >= 126:
            size = 2 if length == 126 else 8
            self._need(2 + size, deadline)
            length, offset = int.from_bytes(self.buffer[2:2 + size], "big"), 2 + size
        self._need(offset + length, deadline)
        payload = bytes(self.buffer[offset:offset + length])
        del self.buffer[:offset + length]
        return opcode, payload

    def wait_close(self, timeout: float) -> tuple[float, int]:
        """perf_counter when the close frame (its code) or EOF (-1) arrived."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                opcode, payload = self.frame(deadline)
                if opcode == 0x8:
                    return time.perf_counter(), int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
        except (EOFError, ConnectionResetError):
            return time.perf_counter(), -1

    def close(self) -> None:
        self.sock.close()
