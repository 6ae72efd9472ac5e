"""What a fresh clone promises: the README's commands are what CI runs, every dependency has a
compatible range, the licence is there, and every Python the package admits passes."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import discord
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def readme_command(comment: str) -> str:
    """The command under ``# <comment>`` in the README's set-up block."""
    match = re.search(rf"^# {re.escape(comment)}.*\n(.+)$", README, re.MULTILINE)
    assert match, comment
    return match.group(1).strip()


def test_ci_first_runs_the_readme_test_command_exactly_as_written():
    command = readme_command("2. install and run the tests")
    assert command == (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/python -m pytest"
    )
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in script
                if line.strip() and not line.lstrip().startswith("#")
                and not line.startswith(("set ", "cd "))]
    assert commands[0] == f"{command} || exit $?"


def test_readme_run_command_uses_the_console_entry_point():
    command = readme_command("1. install and run the bot")
    assert command == (
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python -m bot"
    )
    assert PYPROJECT["project"]["scripts"] == {"animate-bot": "bot.__main__:main"}


def _requirements() -> list[str]:
    project = PYPROJECT["project"]
    extras = [req for group in project.get("optional-dependencies", {}).values() for req in group]
    return [*project["dependencies"], *extras, *PYPROJECT["build-system"]["requires"]]


@pytest.mark.parametrize("requirement", _requirements())
def test_every_dependency_has_a_compatible_range(requirement):
    name = re.match(r"[A-Za-z0-9_.\-\[\]]+", requirement)
    assert name, requirement
    spec = requirement[name.end():]
    assert re.search(r">=\s*[\d.]+", spec), f"{requirement}: no lower bound"
    assert re.search(r"(<|~=|==)\s*[\d.]+", spec), f"{requirement}: no upper bound"


def test_license_file_is_mit_and_packaged():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Permission is hereby granted, free of charge" in text
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]


def test_systemd_unit_names_its_env_file_and_stops_on_settings_errors():
    unit = re.search(r"```ini\n(.*?)```", OPERATIONS, re.DOTALL)
    assert unit, "a systemd unit example"
    lines = dict(
        line.split("=", 1) for line in unit.group(1).splitlines() if "=" in line
        and not line.startswith("#")
    )
    exec_start = shlex.split(lines["ExecStart"])
    assert exec_start[0].startswith("/")
    assert exec_start[0].endswith("/animate-bot")
    env_file = exec_start[exec_start.index("--env-file") + 1]
    assert env_file.startswith("/")
    assert lines["RestartPreventExitStatus"] == "2"  # a bad setting: a restart cannot help
    assert lines["Restart"] == "on-failure"


def test_ci_runs_the_suite_on_each_installed_python_the_package_admits():
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    script = (ROOT / ".ci" / "run").read_text()
    assert "for minor in 3.12 3.13; do" in script
    assert "pyenv root" in script
    assert "skipping it" in script


def test_discord_escape_markdown_warning_is_ignored_but_the_same_warning_from_us_is_not():
    """Python 3.13 deprecates re.sub's positional count, which discord.py's escape_markdown
    still passes. pyproject ignores that warning from discord.utils only (warnings are errors)."""
    assert discord.utils.escape_markdown("*hi*") == "\\*hi\\*"
    if sys.version_info >= (3, 13):
        with pytest.raises(DeprecationWarning, match="'count' is passed as positional"):
            re.sub("a", "b", "aa", 1)  # noqa: B034 - the deprecated call is the point


def test_tests_close_the_sqlite3_connections_they_open():
    """sqlite3's own `with` commits but does not close; Python 3.13 warns on an unclosed
    connection (an error here), whenever the garbage collector happens to run."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in (ROOT / "tests").rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"with sqlite3\.connect\(", line)
    ]
    assert offenders == [], "use contextlib.closing(sqlite3.connect(...))"


def test_ci_finds_pyenv_pythons_and_skips_a_missing_one(tmp_path):
    """.ci/run's find_python: the newest pyenv version of a minor, or nothing (then skipped)."""
    script = (ROOT / ".ci" / "run").read_text()
    function = re.search(r"^find_python\(\) \{\n.*?^\}\n", script, re.MULTILINE | re.DOTALL)
    assert function, "find_python in .ci/run"
    for version in ("3.12.1", "3.12.10"):
        binary = tmp_path / "versions" / version / "bin" / "python3.12"
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o755)
    found = {}
    for minor in ("3.12", "3.13"):
        result = subprocess.run(
            ["bash", "-c", f"{function.group(0)}\nfind_python {minor}"],
            env={"PATH": "/usr/bin:/bin", "PYENV_ROOT": str(tmp_path), "HOME": str(tmp_path)},
            capture_output=True, text=True, timeout=30, check=False,
        )
        found[minor] = (result.returncode, result.stdout.strip())
    assert found["3.12"] == (0, str(tmp_path / "versions" / "3.12.10" / "bin" / "python3.12"))
    if not any(Path(d, "python3.13").exists() for d in ("/usr/bin", "/bin")):
        assert found["3.13"][0] != 0  # not installed: .ci/run says so and goes on
    assert 'echo ".ci/run: Python $minor is not installed here; skipping it"' in script


def _anchors(document: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings."""
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.DOTALL)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    }


def test_readme_links_only_to_pages_that_exist_and_every_page_is_linked():
    """The README is the table of contents: each docs/ page is reachable from it, and each
    relative link in the README and the docs/ pages names a file (and heading) that is there."""
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert pages
    for page in pages:
        assert f"](docs/{page.name})" in README, page.name
    for document in [ROOT / "README.md", *pages]:
        text = re.sub(r"```.*?```", "", document.read_text(), flags=re.DOTALL)
        for target, anchor in re.findall(r"\]\(([^)#:\s]*)(?:#([^)\s]*))?\)", text):
            linked = document.parent / target if target else document
            assert linked.exists(), f"{document.name}: {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), f"{document.name}: {target}#{anchor}"
