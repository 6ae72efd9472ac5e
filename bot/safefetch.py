"""What a provider-given result URL may reach, and what counts as a video.

A result URL comes from the provider's answer, and whatever it returns is posted in a member's
thread. So a download connects only to public addresses (never the bot's own machine or its
network: its /metrics, a cloud metadata service, a router), checked on the very address a
socket is about to connect to, after DNS; and the file is posted only if its bytes are a video.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final

from aiohappyeyeballs import AddrInfoType

# How the first bytes of the containers Discord plays inline start.
MAGIC_BYTES: Final = 12
_EBML: Final = b"\x1a\x45\xdf\xa3"  # Matroska / WebM
_FTYP: Final = b"ftyp"  # ISO base media (MP4, MOV, M4V, 3GP): a 'ftyp' box at offset 4
# Untyped storage answers as octet-stream (S3 says binary/octet-stream); the bytes decide.
_UNTYPED: Final = frozenset({"application/octet-stream", "binary/octet-stream"})
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def is_public_address(address: str) -> bool:
    """True only for a globally routable unicast address (IPv4 inside IPv6 is unwrapped)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None and not is_public_address(str(inner)):
            return False
        if ip.ipv4_mapped is not None:
            return True  # its IPv4 address is public; ::ffff:0:0/96 itself counts as private
        if ip.is_site_local:
            return False
    return ip.is_global and not (
        ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local
        or ip.is_unspecified or ip.is_private
    )


class RefusedAddress(OSError):
    """A socket to a non-public address was refused before it connected."""


class AddressGuard:
    """``socket_factory`` for an ``aiohttp.TCPConnector``: aiohttp asks it for a socket for
    each resolved address just before connecting, so a name that resolves (or rebinds) to a
    private address is refused as surely as a literal one. ``anywhere`` lifts the check for
    the request under way: only for the exact origin of the base URL the owner configured
    (a local provider, the tests' fakes), never for a host the provider's answer names.
    """

    def __init__(self) -> None:
        self.anywhere = False
        self.refused: str | None = None

    def __call__(self, addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, address = addr_info
        host = str(address[0])
        if not self.anywhere and not is_public_address(host):
            self.refused = host
            raise RefusedAddress(f"{host} is not a public address")
        return socket.socket(family=family, type=type_, proto=proto)


def video_content_type(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith("video/") or kind in _UNTYPED


def looks_like_video(head: bytes) -> bool:
    """The first ``MAGIC_BYTES`` of the file are those of an MP4/MOV or WebM/Matroska file."""
    return len(head) >= MAGIC_BYTES and (head[4:8] == _FTYP or head.startswith(_EBML))
