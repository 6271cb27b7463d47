"""What processes listen on, read with psutil: for the tests that keep servers off the network."""

from __future__ import annotations

import ipaddress

import psutil


def listeners(pids: set[int]) -> list[tuple[int, str, str, int]]:
    """(pid, process name, ip, port) of every listening inet socket of these processes."""
    found = []
    for pid in sorted(pids):
        try:
            process = psutil.Process(pid)
            sockets = process.net_connections(kind="inet")
            name = process.name()
        except psutil.NoSuchProcess:
            continue
        for sock in sockets:
            if sock.status == psutil.CONN_LISTEN:
                found.append((pid, name, sock.laddr.ip, sock.laddr.port))
    return found


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def wide_ports(pid: int) -> set[int]:
    """The ports process `pid` listens on beyond loopback."""
    return {port for _, _, ip, port in listeners({pid}) if not is_loopback(ip)}


def ports(pid: int) -> set[int]:
    """Every port process `pid` listens on, loopback included."""
    return {port for *_, port in listeners({pid})}
