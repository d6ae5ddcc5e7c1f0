"""What a process tree tried to reach, read from `strace -ff` (one file per task).

Every connect, sendto, sendmsg and sendmmsg that names an address is an attempt, whatever its
result: with no route, a name lookup fails at once (`connect` to the resolver: ENETUNREACH), yet
it shows what the program would have sent on a real network. Each attempt is named by the command
line of the process that made it (its last `execve`, or the one its creator had when it was
cloned), so a thread of an engine worker is named as that worker.
"""

from __future__ import annotations

import codecs
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Attempt", "Trace", "read_trace", "strace_command"]

TRACED = "connect,sendto,sendmsg,sendmmsg,execve,clone,clone3,fork,vfork"
LOCAL_FAMILIES = frozenset({"AF_UNIX", "AF_NETLINK", "AF_UNSPEC"})
"""Unix sockets, the kernel (interface listings) and a UDP socket's disconnect stay on the device."""
DNS_PORT = 53

_CALL = re.compile(r"^(connect|sendto|sendmsg|sendmmsg)\((\d+), (.*)\)\s+= (.*)$")
_EXEC = re.compile(r'^execve\("[^"]*", \[(.*)\], .*\)\s+= 0$')
_CLONE = re.compile(r"^(clone3?|fork|vfork)\(.*\)\s+= (\d+)$")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_FAMILY = re.compile(r"sa_family=(AF_\w+)")
_INET = re.compile(r'sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)')
_INET6 = re.compile(r'sin6_port=htons\((\d+)\).*?inet_pton\(AF_INET6, "([^"]+)"')
_UNIX = re.compile(r'sun_path=(@?"(?:[^"\\]|\\.)*")')
_PAYLOAD = re.compile(r'iov_base="((?:[^"\\]|\\.)*)"|^"((?:[^"\\]|\\.)*)"')
"""The first buffer sent: sendto's own, or the first iov of sendmsg and sendmmsg."""


def strace_command(prefix: Path, argv: Sequence[str]) -> list[str]:
    """`argv` under strace, following every thread and child into `prefix.<tid>` files. Only the
    traced calls stop the program (`--seccomp-bpf`): llama.cpp's threads make many futex calls a
    plain ptrace would stop at."""
    return ["strace", "-f", "-ff", "--seccomp-bpf", "-qq", "-s", "256", "-o", str(prefix),
            "-e", f"trace={TRACED}", *argv]


@dataclass(kw_only=True, slots=True, frozen=True)
class Attempt:
    pid: int
    """The task (thread) that made the call."""
    process: int
    """The process it belongs to (the thread group's first task)."""
    command: str
    call: str
    family: str
    address: str
    port: int | None
    result: str
    lookup: str | None = None
    """The name asked for, when a lookup's query was sent (the resolver was reachable)."""

    @property
    def leaves_the_device(self) -> bool:
        if self.family in LOCAL_FAMILIES:
            return False
        if self.family not in ("AF_INET", "AF_INET6") or self.port == DNS_PORT:
            return True  # a lookup is a question to the network, even to a resolver on loopback
        address = ipaddress.ip_address(self.address)
        mapped = getattr(address, "ipv4_mapped", None)
        return not (address.is_loopback or (mapped is not None and mapped.is_loopback))

    @property
    def summary(self) -> str:
        what = f"a name lookup ({self.lookup or 'name not sent'})" if self.port == DNS_PORT else self.call
        where = f"{self.address}:{self.port}" if self.port is not None else self.address
        return f"{what} to {where} → {self.result}"

    def __str__(self) -> str:
        return f"{self.command} [pid {self.pid}]: {self.summary}"


@dataclass(kw_only=True, slots=True)
class Trace:
    commands: dict[int, str]
    """Each task's command line at its end."""
    attempts: list[Attempt]

    def leaks(self) -> list[Attempt]:
        return [a for a in self.attempts if a.leaves_the_device]


@dataclass(kw_only=True, slots=True)
class _Task:
    lines: list[str]
    creator: tuple[int, int] | None = None
    """(tid, line) of the clone that made this task."""
    thread: bool = False
    """Made by a clone that shares its creator's process (CLONE_THREAD)."""


def _unescape(text: str) -> bytes:
    """strace's C-style string escapes back to bytes."""
    return codecs.escape_decode(text.encode("latin-1"))[0]  # type: ignore[no-any-return]


def _query_name(payload: bytes) -> str | None:
    """The QNAME of a DNS query (RFC 1035 §4.1.2), or None if `payload` is not one."""
    labels, at = [], 12
    while at < len(payload) and (size := payload[at]) != 0:
        labels.append(payload[at + 1:at + 1 + size].decode("ascii", "replace"))
        at += 1 + size
    return ".".join(labels) if labels and at < len(payload) else None


def _destination(args: str) -> tuple[str, str, int | None] | None:
    """(family, address, port) named in a call's arguments; None when the socket was connected before."""
    family = _FAMILY.search(args)
    if family is None:
        return None
    if (inet := _INET.search(args)) is not None:
        return family.group(1), inet.group(2), int(inet.group(1))
    if (inet6 := _INET6.search(args)) is not None:
        return family.group(1), inet6.group(2), int(inet6.group(1))
    if (unix := _UNIX.search(args)) is not None:
        return family.group(1), unix.group(1), None
    return family.group(1), args, None


def _query(args: str) -> str | None:
    """The name asked for in a send call's first buffer, if it is a DNS query."""
    payload = _PAYLOAD.search(args)
    return _query_name(_unescape(payload.group(1) or payload.group(2))) if payload else None


def _lookup(lines: list[str], index: int, call: re.Match[str]) -> str | None:
    """The name a call to a resolver asked for: in its own buffer, or for a connect, in the next
    send on the same socket."""
    if call.group(1) != "connect":
        return _query(call.group(3))
    for line in lines[index + 1:]:
        later = _CALL.match(line)
        if later and later.group(2) == call.group(2):
            return _query(later.group(3)) if later.group(1) != "connect" else None
    return None


def read_trace(prefix: Path) -> Trace:
    tasks = {int(path.suffix[1:]): _Task(lines=path.read_text(errors="replace").splitlines())
             for path in prefix.parent.glob(f"{prefix.name}.*") if path.suffix[1:].isdigit()}
    for tid, task in tasks.items():
        for index, line in enumerate(task.lines):
            if (clone := _CLONE.match(line)) is not None and int(clone.group(2)) in tasks:
                child = tasks[int(clone.group(2))]
                child.creator, child.thread = (tid, index), "CLONE_THREAD" in line

    def process_of(tid: int) -> int:
        task = tasks[tid]
        return process_of(task.creator[0]) if task.thread and task.creator else tid

    def command_at(tid: int, index: int) -> str:
        task = tasks[tid]
        for line in reversed(task.lines[:index]):
            if (exec_ := _EXEC.match(line)) is not None:
                return " ".join(_unescape(arg).decode(errors="replace") for arg in _STRING.findall(exec_.group(1)))
        return command_at(*task.creator) if task.creator else "?"

    attempts: list[Attempt] = []
    for tid, task in sorted(tasks.items()):
        for index, line in enumerate(task.lines):
            call = _CALL.match(line)
            if call is None or (destination := _destination(call.group(3))) is None:
                continue
            family, address, port = destination
            lookup = _lookup(task.lines, index, call) if port == DNS_PORT else None
            attempts.append(Attempt(pid=tid, process=process_of(tid), command=command_at(tid, index),
                                    call=call.group(1), family=family, address=address, port=port,
                                    result=call.group(4), lookup=lookup))
    return Trace(commands={tid: command_at(tid, len(task.lines)) for tid, task in tasks.items()},
                 attempts=attempts)
