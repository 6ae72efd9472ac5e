"""Start-up against run time: what ends a start with one line, and what the bot rides out."""

from __future__ import annotations

import logging
import socket
import ssl

import aiohttp
import discord
import pytest
import yarl

from bot.__main__ import unreachable
from bot.bot import GatewayUnreachable
from bot.config import load_settings
from tests.e2e.world import running_world
from tests.helpers import closed_port

SETTINGS = load_settings({"DISCORD_TOKEN": "t", "SHORTAPI_KEY": "k"})


async def test_gateway_outage_at_run_time_is_retried_as_discord_py_does(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    async with running_world(tmp_path) as world:
        bot, fake = world.bot, world.discord
        assert bot.ws is not None
        real = bot.ws.gateway
        # The next connection attempt (a RESUME at the session's gateway) finds nobody there.
        bot.ws.gateway = yarl.URL(f"ws://127.0.0.1:{closed_port()}/")
        failures = 0

        def count(record: logging.LogRecord) -> bool:
            nonlocal failures
            failures += "Attempting a reconnect" in record.getMessage()
            return True

        logging.getLogger("discord.client").addFilter(count)
        try:
            await fake.drop_connection()
            await fake.wait_for(lambda: failures >= 1, timeout=30)
            assert not bot.is_closed()
            bot.ws.gateway = real  # the outage is over
            await fake.wait_for(lambda: fake.resume_count >= 1, timeout=30)
        finally:
            logging.getLogger("discord.client").removeFilter(count)
        assert fake.connected
        quote = await world.quote()  # and the bot serves again
        assert quote.components


async def test_http_port_taken_without_callbacks_runs_on_without_the_server(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        async with running_world(tmp_path, HTTP_PORT=str(port)) as world:
            assert world.bot.web is None
            quote = await world.quote()
            assert quote.components
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"HTTP server not started on 127.0.0.1:{port}" in e for e in errors), errors


def _connector_error(os_error: OSError) -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey(
        "discord.com", 443, True, True, None, None, None
    )
    return aiohttp.ClientConnectorError(key, os_error)


@pytest.mark.parametrize(
    ("exc", "says"),
    [
        (_connector_error(socket.gaierror(-2, "Name or service not known")),
         "DNS lookup of discord.com failed (Name or service not known)"),
        (_connector_error(ConnectionRefusedError(111, "Connect call failed")),
         "connection to discord.com:443 refused"),
        (_connector_error(OSError(113, "No route to host")), "discord.com:443: No route to host"),
        (aiohttp.ClientHttpProxyError(None, (), status=407), "the proxy refused the connection"),
        (ssl.SSLCertVerificationError("certificate verify failed"), "TLS check failed"),
        (TimeoutError(), "did not answer in time"),
        (aiohttp.ServerDisconnectedError(), "cannot reach Discord"),
    ],
)
def test_network_failures_at_start_are_one_line_naming_what_to_check(exc, says):
    line = unreachable(exc, SETTINGS)
    assert line is not None
    text = str(line)
    assert says in text
    assert "https://discord.com/api/v10" in text
    assert "DISCORD_API_BASE_URL" in text
    assert "\n" not in text


def test_gateway_failures_name_the_gateway_setting():
    gateway = GatewayUnreachable("wss://gateway.discord.gg/", TimeoutError())
    text = str(unreachable(gateway, SETTINGS))
    assert "wss://gateway.discord.gg/" in text
    assert "DISCORD_GATEWAY_URL" in text


def test_other_errors_are_not_mistaken_for_the_network():
    assert unreachable(RuntimeError("bug"), SETTINGS) is None
    assert unreachable(discord.Forbidden(_FakeResponse(403), "no"), SETTINGS) is None


class _FakeResponse:
    def __init__(self, status: int) -> None:
        self.status = status
        self.reason = "Forbidden"
