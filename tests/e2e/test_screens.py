"""docs/screens.md shows every screen ``python -m tests.screens`` draws, and the drawing works
on the payloads the real bot sends."""

from __future__ import annotations

from pathlib import Path

from tests.screens import SCENES, capture, page, render

DOCS = Path(__file__).resolve().parents[2] / "docs"


async def test_the_screens_page_lists_every_screen_and_each_is_drawn(tmp_path):
    screens, studio, names = await capture(tmp_path)
    assert len(screens) >= len(SCENES)
    assert (DOCS / "screens.md").read_text() == page(screens), (
        "docs/screens.md is out of date: run python -m tests.screens"
    )
    for screen in screens:
        assert (DOCS / "screens" / f"{screen.slug}.png").is_file()
        picture = render(screen, studio, names)
        assert picture.width == 820
        assert picture.height > 60
