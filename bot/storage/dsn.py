"""A database URL as people may read it: rebuilt without any secret, and checked before a driver
reads it, so that no error text (the bot's or the driver's) can quote a password.

A password can sit in the user info (``postgresql://user:pw@host/db``, also with no user:
``postgresql://:pw@host/db``) or in the query (``?password=``, ``?sslpassword=``); a password
with an unencoded ``@``, ``/``, ``?`` or ``#`` makes the URL ambiguous: every reader splits it
differently (libpq at the last ``@``, asyncpg at the first), so it is hidden up to the last ``@``
and refused before connecting, with the characters to encode.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlsplit

HIDDEN: Final = "***"
# Query parameters whose value is (or may be) a secret: password, sslpassword, passfile,
# sslkey, and whatever a newer driver names alike.
_SECRET_KEY: Final = re.compile(r"pass|secret|token|key|cred|auth", re.IGNORECASE)
_PORT: Final = re.compile(r"[0-9]{1,5}")


def _parts(url: str) -> tuple[str, str | None, str] | None:
    """``(scheme, user info or None, the rest)``; None for what is not a URL at all."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        return None
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:end]
    if "@" in rest[end:] or authority.count("@") > 1:
        # An '@' beyond the first: a password with an unencoded '@', '/', '?' or '#' (or an
        # '@' in the path or query). All of it up to the last '@' may be secret.
        userinfo, _, rest = rest.rpartition("@")
        return scheme, userinfo, rest
    if "@" in authority:
        userinfo, _, host = authority.partition("@")
        return scheme, userinfo, host + rest[end:]
    return scheme, None, rest


def _hide_query(query: str, hidden: str | None) -> str:
    pieces = []
    for piece in query.split("&"):
        key, eq, _ = piece.partition("=")
        if not (eq and _SECRET_KEY.search(unquote_plus(key))):
            pieces.append(piece)
        elif hidden is not None:
            pieces.append(f"{key}={hidden}")
    return "&".join(pieces)


def _rebuild(url: str, hidden: str | None) -> str:
    parts = _parts(url)
    if parts is None:
        return HIDDEN
    scheme, userinfo, rest = parts
    rest = rest.split("#", 1)[0]
    place, _, query = rest.partition("?")
    shown = f"{scheme}://"
    if userinfo is not None:
        user, colon, _ = userinfo.partition(":")
        if any(c in user for c in "/?#@"):
            user, colon = HIDDEN, ""  # the '@' was not that of the user info: hide all of it
        if colon and hidden is not None:
            shown += f"{user}:{hidden}@"
        elif user:
            shown += f"{user}@"
    shown += place
    query = _hide_query(query, hidden) if query else ""
    return f"{shown}?{query}" if query else shown


def redact(url: str) -> str:
    """``url`` for people to read: the password of the user info and the value of every
    password-like query parameter become ``***`` (the fragment is dropped); anything that is
    not a URL is hidden whole."""
    return _rebuild(url, HIDDEN)


def without_secrets(url: str) -> str:
    """``url`` with its secrets left out, for a command to copy (the password then comes from
    ``PGPASSWORD`` or ``~/.pgpass``)."""
    return _rebuild(url, None)


def secrets(url: str) -> list[str]:
    """Every secret ``url`` holds, as written and decoded (longest first, for replacing)."""
    parts = _parts(url)
    if parts is None:
        return [url] if url else []
    _, userinfo, rest = parts
    found: set[str] = set()
    if userinfo is not None:
        user, colon, password = userinfo.partition(":")
        if any(c in user for c in "/?#@"):
            found.add(userinfo)
        elif colon:
            found.add(password)
    query = rest.split("#", 1)[0].partition("?")[2]
    for piece in query.split("&"):
        key, eq, value = piece.partition("=")
        if eq and _SECRET_KEY.search(unquote_plus(key)):
            found.add(value)
    every = set()
    for secret in found:
        every |= {secret, unquote(secret), unquote_plus(secret), quote(unquote(secret), safe="")}
    return sorted((s for s in every if s), key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` (an error from a driver, say) with ``url`` and each of its secrets hidden."""
    text = text.replace(url, redact(url))
    for secret in secrets(url):
        text = text.replace(secret, HIDDEN)
    return text


def problem(url: str) -> str | None:
    """Why a PostgreSQL URL cannot be read reliably, in words that quote none of it; None if
    it can. Checked before a driver reads it: a driver's own complaint may quote a piece of
    the password (asyncpg: "invalid literal for int() with base 10: 'pa'")."""
    parts = _parts(url)
    if parts is None:
        return "it is not a URL (postgresql://user:password@host:port/database)"
    _, userinfo, rest = parts
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return "an IPv6 address is not closed by ]"
    if userinfo is not None and (url.count("@") > 1 or "@" not in netloc):
        return ("it has an @ that cannot be read reliably: percent-encode @ / ? # in the user "
                "name and password (%40 %2F %3F %23), and any other @ (%40)")
    rest = rest.split("#", 1)[0]
    place, _, query = rest.partition("?")
    hostspec = re.split(r"[/]", place, maxsplit=1)[0]
    for host in hostspec.split(",") if hostspec else []:
        if host.startswith("["):
            _, bracket, port = host[1:].partition("]")
            if not bracket:
                return "an IPv6 address is not closed by ]"
            if port and not port.startswith(":"):
                return "a host has something after its IPv6 address other than :port"
            port = port[1:]
        else:
            port = host.partition(":")[2]
        if port and not (_PORT.fullmatch(port) and 1 <= int(port) <= 65535):
            return "a port is not a number from 1 to 65535"
    if query:
        try:
            parse_qsl(query, strict_parsing=True)
        except ValueError:
            return "its query cannot be read (key=value pairs joined by &)"
    return None
