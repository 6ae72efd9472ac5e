"""Start-up: settings errors, command sync on change only, secrets kept out of logs."""

import logging
import os
import subprocess
import sys

import pytest

from tests.e2e.world import DISCORD_TOKEN, running_world


def run_bot(env: dict[str, str], cwd) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DISCORD_TOKEN", "SHORTAPI_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "bot"], env={**clean, **env}, cwd=cwd,
        capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.parametrize(
    ("env", "missing"),
    [({}, "DISCORD_TOKEN"), ({"DISCORD_TOKEN": "x"}, "SHORTAPI_KEY")],
)
def test_missing_secret_is_one_clear_line_and_exit_2(tmp_path, env, missing):
    result = run_bot(env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert missing in lines[0]
    assert ".env.example" in lines[0]
    assert "Traceback" not in result.stderr


def test_settings_come_from_dotenv_and_bad_values_are_named(tmp_path):
    (tmp_path / ".env").write_text(
        "DISCORD_TOKEN=abc\nSHORTAPI_KEY=def\nPOLL_INTERVAL_SECONDS=often\n"
    )
    result = run_bot({}, tmp_path)
    assert result.returncode == 2
    assert "POLL_INTERVAL_SECONDS" in result.stderr
    assert "abc" not in result.stderr
    assert "def" not in result.stderr.replace("default", "")


async def test_commands_are_synced_only_when_they_change(tmp_path):
    async with running_world(tmp_path) as world:
        assert world.discord.command_syncs == 1
        names = sorted((c["type"], c["name"]) for c in world.discord.global_commands)
        assert names == [(1, "animate"), (1, "animate-admin"), (1, "jobs"), (1, "mydata"),
                         (1, "usage"), (3, "Animate")]
        admin = next(c for c in world.discord.global_commands if c["name"] == "animate-admin")
        assert int(admin["default_member_permissions"]) == 1 << 5  # Manage Server
        assert sorted(o["name"] for o in admin["options"]) == [
            "alerts", "approvals", "blocked-words", "budget", "channels", "forget", "job",
            "limit", "pause", "refund", "report", "resume", "settings", "timezone"]
        animate = next(c for c in world.discord.global_commands if c["name"] == "animate")
        assert [o["name"] for o in animate["options"]] == [
            "image", "prompt", "resolution", "duration", "aspect_ratio", "audio", "multi_shot"]
    async with running_world(tmp_path) as world:
        assert world.discord.command_syncs == 0


async def test_a_full_run_never_logs_a_secret(tmp_path, caplog):
    from tests.fakes.fake_shortapi import Plan
    from tests.helpers import free_port

    caplog.set_level(logging.DEBUG)
    port = free_port()
    env = {"HTTP_PORT": str(port), "CALLBACK_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    async with running_world(tmp_path, **env) as world:
        world.api.fail_next("query", 503, "x")
        world.discord.fail_next("POST", r"/threads$", 403, {"code": 50013, "message": "no"})
        quote = await world.quote()
        await world.click(quote, "Confirm")
        await world.api.wait_for(lambda: world.api.creates)
        token = world.api.creates[0]["callback_url"].rsplit("/", 1)[1]
        await world.api.wait_for(lambda: "job-1" in world.api.jobs)
        assert await world.api.send_callback("job-1") == 200
        await world.discord.wait_for(lambda: "Done" in world.embed_text(quote.id))
        job = await world.bot.ledger.get_job(1)
        assert token not in repr(job)
        world.api.fail_next("create", 500, "boom")
        world.api.plan_next(Plan(statuses=[3], error="bad"))
        failed = await world.quote()
        await world.click(failed, "Confirm")
        await world.discord.wait_for(lambda: "Couldn't make" in world.embed_text(failed.id))
        key = world.api.key
    assert len(caplog.records) > 20
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert DISCORD_TOKEN not in text
    assert key not in text
    assert token not in text
    messages = " ".join(
        f"{m.content} {m.embeds}" for m in world.discord.messages.values()
    )
    assert key not in messages
    assert DISCORD_TOKEN not in messages
    assert token not in messages
