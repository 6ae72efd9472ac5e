"""Result downloads (``bot.safefetch`` through the ShortAPI client): only public hosts, only
videos."""

import socket

import pytest
from aiohttp import web

from bot.dryrun import sample_video
from bot.safefetch import AddressGuard, is_public_address
from bot.shortapi import (
    NotAVideo,
    UnsafeResult,
)
from tests.fakes.fake_shortapi import Plan, fake_mp4
from tests.helpers import ARGS

WEBM_HEAD = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + bytes(4000)


HTML = b"<!doctype html><html><body>not a video</body></html>" * 20


class Target:
    """A second local server, where a redirect must never arrive."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> "Target":
        async def anything(request: web.Request) -> web.StreamResponse:
            self.hits.append(request.path)
            return web.Response(body=fake_mp4(), content_type="video/mp4")

        app = web.Application()
        app.router.add_get("/{tail:.*}", anything)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def finished_video_url(fake, client, **plan) -> str:
    fake.plan_next(Plan(statuses=[2], **plan))
    created = await client.create(ARGS)
    url = (await client.query(created.job_id)).video_url
    assert url is not None
    return url


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_redirect_to_another_local_address_is_never_followed(fake, client, tmp_path,
                                                                      host):
    url = await finished_video_url(fake, client)
    async with Target() as target:
        fake.fail_next("video", 302, "", {"Location": f"http://{host}:{target.port}/metrics"})
        with pytest.raises(UnsafeResult, match="nothing was posted"):
            await client.download(url, tmp_path / "v.mp4", max_bytes=10**6)
        assert target.hits == []
    assert fake.downloads == ["job-1"]  # refused at once: a bad place is not retried


@pytest.mark.parametrize(
    "place",
    [
        "http://127.0.0.1:{port}/metrics",  # the bot's own machine, another port
        "http://localhost:{port}/metrics",  # a name that resolves to it
        "http://[::ffff:127.0.0.1]:{port}/metrics",
        "http://2130706433:{port}/metrics",  # 127.0.0.1 written as one number
        "http://0x7f000001:{port}/metrics",
        "http://127.1:{port}/metrics",
        "https://localhost:{port}/metrics",
    ],
)
async def test_a_result_url_naming_a_local_address_is_never_fetched(fake, client, tmp_path,
                                                                   place):
    """The first hop is checked like a redirect: only SHORTAPI_BASE_URL's own origin may be
    local (issue 18)."""
    async with Target() as target:
        url = place.format(port=target.port)
        with pytest.raises(UnsafeResult, match="nothing was posted"):
            await client.download(url, tmp_path / "v.mp4", max_bytes=10**6)
        assert target.hits == []
    assert client.sleeps == []  # refused at once: a bad place is not retried


@pytest.mark.parametrize(
    "host",
    ["169.254.169.254", "10.0.0.7", "192.168.1.1", "100.64.0.1", "0.0.0.0", "[fd00::1]",
     "[fe80::1]", "240.0.0.1"],
)
async def test_a_result_url_on_a_private_or_metadata_address_is_refused(client, tmp_path, host):
    with pytest.raises(UnsafeResult):
        await client.download(f"http://{host}/latest/meta-data/", tmp_path / "v.mp4",
                              max_bytes=10**6)
    assert client.sleeps == []


async def test_only_the_exact_origin_of_the_base_url_may_be_local(fake, client, tmp_path):
    """Same host and port, another scheme: not the origin the owner configured."""
    url = await finished_video_url(fake, client)
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(UnsafeResult):
        await client.download("https" + url[4:], tmp_path / "v.mp4", max_bytes=10**6)
    assert fake.downloads == []
    # The base URL's own origin is fetched (the local fake of the tests).
    assert await client.download(url, tmp_path / "v.mp4", max_bytes=10**6) == len(fake_mp4())


async def test_a_redirect_to_a_non_http_scheme_is_refused(fake, client, tmp_path):
    url = await finished_video_url(fake, client)
    fake.fail_next("video", 302, "", {"Location": "file:///etc/passwd"})
    with pytest.raises(UnsafeResult):
        await client.download(url, tmp_path / "v.mp4", max_bytes=10**6)


async def test_a_redirect_on_the_base_urls_own_origin_is_followed(fake, client, tmp_path):
    url = await finished_video_url(fake, client)
    await finished_video_url(fake, client)  # job-2, on the same local fake
    fake.fail_next("video", 307, "", {"Location": "/videos/job-2.mp4"})
    dest = tmp_path / "v.mp4"
    assert await client.download(url, dest, max_bytes=10**6) == len(fake_mp4())
    assert fake.downloads == ["job-1", "job-2"]


async def test_endless_redirects_end_with_a_clear_refusal(fake, client, tmp_path):
    url = await finished_video_url(fake, client)
    fake.fail_next("video", 302, "", {"Location": url}, times=20)
    with pytest.raises(UnsafeResult):
        await client.download(url, tmp_path / "v.mp4", max_bytes=10**6)
    assert len(fake.downloads) <= 6


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (HTML, "video/mp4"),  # the type says video, the bytes do not
        (fake_mp4(), "text/html"),  # the bytes say video, the type does not
        (b"\x00\x00\x00", "video/mp4"),  # too short to be anything
        (b"", "video/mp4"),
    ],
)
async def test_anything_but_a_video_is_refused(fake, client, tmp_path, body, content_type):
    url = await finished_video_url(fake, client, video=body, content_type=content_type)
    with pytest.raises(NotAVideo, match="not a video"):
        await client.download(url, tmp_path / "v.mp4", max_bytes=10**6)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (sample_video().read_bytes(), "video/mp4"),
        (fake_mp4(), "application/octet-stream"),
        (fake_mp4(), "video/quicktime"),
        (WEBM_HEAD, "video/webm"),
    ],
)
async def test_real_videos_pass(fake, client, tmp_path, body, content_type):
    url = await finished_video_url(fake, client, video=body, content_type=content_type)
    dest = tmp_path / "v.mp4"
    assert await client.download(url, dest, max_bytes=10**7) == len(body)
    assert dest.read_bytes() == body


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("127.9.9.9", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:93.184.216.34", True),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("not an address", False),
    ],
)
def test_only_public_addresses_count_as_public(address, public):
    assert is_public_address(address) is public


def test_the_socket_guard_checks_the_address_it_is_about_to_connect_to():
    guard = AddressGuard()
    v4 = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.216.34", 443))
    local = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("10.0.0.7", 443))
    guard(v4).close()
    assert guard.refused is None
    with pytest.raises(OSError, match=r"10\.0\.0\.7"):
        guard(local)
    assert guard.refused == "10.0.0.7"
    guard.anywhere = True  # the configured base URL's own origin
    guard(local).close()
