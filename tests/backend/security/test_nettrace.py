"""`tests.nettrace` reads strace's files back into named connection attempts: on lines in the format
strace 6 writes, and on a real trace of a program that tries the network from a thread and a child."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns import NoNetwork, netns_available
from tests.nettrace import read_trace, strace_command

SERVER = '["python", "-m", "backend.cli", "serve", "--port", "8765"]'
WORKER = '["python", "-m", "backend.runtime.child", "5"]'


def write(folder: Path, files: dict[int, list[str]]) -> Path:
    for tid, lines in files.items():
        (folder / f"task.{tid}").write_text("\n".join(lines) + "\n")
    return folder / "task"


def execve(argv: str, result: str = "0") -> str:
    return f'execve("/usr/bin/python", {argv}, 0x7ffc45c8 /* 40 vars */) = {result}'


def test_an_attempt_is_named_by_the_process_that_made_it(tmp_path: Path) -> None:
    prefix = write(tmp_path, {
        100: [execve(SERVER), "vfork()                                 = 200",
              "clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, child_tid=0x7f,"
              " exit_signal=0, stack=0x7f, stack_size=0x7fff80} => {parent_tid=[101]}, 88) = 101",
              'connect(7, {sa_family=AF_INET, sin_port=htons(8765), sin_addr=inet_addr("127.0.0.1")}, 16) = 0'],
        101: ['connect(9, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), '
              'inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH (Network is '
              'unreachable)'],
        200: [execve('["sh"]', "-1 ENOENT (No such file or directory)"), execve(WORKER),
              "clone(child_stack=0x7f, flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM, "
              "parent_tid=0x7f, tls=0x7f, child_tidptr=0x7f) = 201"],
        201: ['connect(8, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16)'
              ' = -1 ENETUNREACH (Network is unreachable)'],
    })
    trace = read_trace(prefix)
    server, worker = "python -m backend.cli serve --port 8765", "python -m backend.runtime.child 5"
    assert trace.commands == {100: server, 101: server, 200: worker, 201: worker}
    assert [(a.pid, a.process, a.address, a.port, a.leaves_the_device) for a in trace.attempts] == [
        (100, 100, "127.0.0.1", 8765, False), (101, 100, "2001:db8::1", 443, True),
        (201, 200, "10.255.255.53", 53, True)]
    lookup = trace.leaks()[1]
    assert str(lookup) == ("python -m backend.runtime.child 5 [pid 201]: a name lookup (name not sent) to "
                           "10.255.255.53:53 → -1 ENETUNREACH (Network is unreachable)")


def test_local_sockets_stay_and_every_lookup_leaves(tmp_path: Path) -> None:
    prefix = write(tmp_path, {300: [
        execve(SERVER),
        'connect(3, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory)',
        "sendto(4, [{nlmsg_len=20, nlmsg_type=RTM_GETLINK, nlmsg_flags=NLM_F_REQUEST|NLM_F_DUMP, nlmsg_seq=1, "
        "nlmsg_pid=0}, {ifi_family=AF_UNSPEC}], 20, 0, {sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}, 12) = 20",
        'connect(5, {sa_family=AF_UNSPEC, sa_data="\\0\\0\\0\\0"}, 16) = 0',
        "connect(6, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), "
        'inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
        'sendto(6, "GET / HTTP/1.1\\r\\n", 16, MSG_NOSIGNAL, NULL, 0) = 16',
        # a resolver on loopback (systemd-resolved's stub) answers, and the query names the host
        'connect(7, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.53")}, 16) = 0',
        "sendmmsg(7, [{msg_hdr={msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base=\"\\316\\1\\1\\0\\0\\1\\0\\0\\0\\0"
        "\\0\\0\\6mobile\\6events\\4data\\tmicrosoft\\3com\\0\\0\\1\\0\\1\", iov_len=49}], msg_iovlen=1, "
        "msg_controllen=0, msg_flags=0}, msg_len=49}], 1, MSG_NOSIGNAL) = 1",
        'sendto(8, "x", 1, 0, {sa_family=AF_PACKET, sll_protocol=htons(ETH_P_ALL), sll_ifindex=2}, 20) = 1',
        # a query sent without connecting first names its resolver itself
        'sendto(9, "\\x12\\x34\\1\\0\\0\\1\\0\\0\\0\\0\\0\\0\\7example\\3org\\0\\0\\1\\0\\1", 29, 0, '
        '{sa_family=AF_INET6, sin6_port=htons(53), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::53", '
        '&sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH (Network is unreachable)',
    ]})
    trace = read_trace(prefix)
    assert [a.family for a in trace.attempts] == ["AF_UNIX", "AF_NETLINK", "AF_UNSPEC", "AF_INET6", "AF_INET",
                                                  "AF_PACKET", "AF_INET6"]
    leaks = trace.leaks()
    assert [(a.address, a.lookup) for a in leaks] == [("127.0.0.53", "mobile.events.data.microsoft.com"),
                                                      (leaks[1].address, None), ("2001:db8::53", "example.org")]
    assert leaks[1].family == "AF_PACKET"
    assert "a name lookup (mobile.events.data.microsoft.com) to 127.0.0.53:53" in str(leaks[0])


@pytest.mark.skipif(shutil.which("strace") is None or not netns_available(),
                    reason="needs strace, root and `ip netns`")
def test_a_real_trace_catches_a_child_and_a_thread(tmp_path: Path) -> None:
    """Without a route nothing is sent: the attempts fail at once, and are seen all the same."""
    child = "import socket\ntry: socket.getaddrinfo('gridless.invalid', 443)\nexcept OSError: pass"
    program = (
        "import socket, subprocess, sys, threading\n"
        "def reach():\n"
        "    try: socket.create_connection(('192.0.2.7', 443), timeout=2)\n"
        "    except OSError: pass\n"
        "thread = threading.Thread(target=reach); thread.start(); thread.join()\n"
        "local = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); local.sendto(b'x', ('127.0.0.1', 9))\n"
        f"subprocess.run([sys.executable, '-c', {child!r}])\n")
    with NoNetwork(index=7) as offline:
        subprocess.run(offline.command(*strace_command(tmp_path / "task", [sys.executable, "-c", program])),
                       check=True, timeout=60)
    trace = read_trace(tmp_path / "task")
    leaks = trace.leaks()
    reached = [a for a in leaks if a.address == "192.0.2.7"]
    assert len(reached) == 1 and "ENETUNREACH" in reached[0].result
    assert reached[0].command.startswith(f"{sys.executable} -c import socket, subprocess")
    assert reached[0].pid != reached[0].process and trace.commands[reached[0].process] == reached[0].command
    lookups = [a for a in leaks if a.port == 53]
    assert lookups and all(a.command.endswith(child) for a in lookups), lookups
    kept = [a.address for a in trace.attempts if a.family == "AF_INET" and not a.leaves_the_device]
    assert kept == ["127.0.0.1"]
