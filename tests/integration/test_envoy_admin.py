"""Envoy's admin interface (pyvoy) is out of reach: no TCP port but the service's answers it."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests._servers import cli_server


def _family(pid: int) -> set[int]:
    """``pid``'s process and every descendant (the CLI, its Envoy workers)."""
    family = {pid}
    changed = True
    while changed:
        changed = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in family:
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent in family:
                family.add(int(entry.name))
                changed = True
    return family


def _socket_inodes(pids: set[int]) -> set[str]:
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    assert inodes, "no sockets found: /proc is not readable here"
    return inodes


def _listening_tcp_ports(pid: int, inodes: set[str]) -> set[int]:
    ports: set[int] = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def _bound_unix_paths(inodes: set[str]) -> list[str]:
    paths = []
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes and not fields[7].startswith("@"):
            paths.append(fields[7])
    return paths


def test_only_the_service_port_listens_and_envoy_admin_is_unreachable() -> None:
    with cli_server("pyvoy") as url:
        port = int(url.rsplit(":", 1)[1])
        envoy_pid = httpx.get(url + "/readyz").json()["pid"]  # the app runs inside Envoy
        cli_pid = int(Path(f"/proc/{envoy_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        family = _family(cli_pid)
        assert envoy_pid in family and len(family) >= 2
        inodes = _socket_inodes(family)

        assert _listening_tcp_ports(envoy_pid, inodes) == {port}
        # The admin's unix socket was asked once at startup, then its path removed.
        for path in _bound_unix_paths(inodes):
            assert not Path(path).exists(), f"a unix socket of the server is reachable at {path}"

        # Envoy's admin paths on the service port reach the app, not Envoy.
        quit_ = httpx.post(url + "/quitquitquit")
        assert quit_.status_code != 200 or "OK" not in quit_.text
        assert quit_.headers.get("content-type", "").startswith("application/")
        for path in ("/config_dump", "/logging", "/listeners", "/server_info", "/stats"):
            answer = httpx.get(url + path)
            assert answer.status_code == 404, (path, answer.status_code)
            assert answer.json() == {"error": "not found"}
        assert httpx.post(url + "/logging?level=trace").status_code != 200
        # Still serving: nothing above stopped it.
        assert httpx.get(url + "/readyz").status_code == 200
        assert Path(f"/proc/{envoy_pid}").exists()
