"""Draw a captured message as Discord's dark theme shows it (Pillow; no browser needed).

Input is the message payload the fake Discord stores (``FakeDiscord.message_payload``: content,
embeds, components, attachments, flags, the reply it answers), so what is drawn is exactly what
the bot sent. Only the parts of Discord's look the bot uses are drawn: markdown (bold, ``-#``
small text, block quotes, links), mentions, timestamps, embeds with author, title, description,
fields, thumbnail and footer, buttons, a video or picture attachment, the "used /command" and
reply headers, and the "Only you can see this" line of private answers.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from PIL import Image, ImageDraw, ImageFont

WIDTH = 820
BG = (49, 51, 56)
EMBED_BG = (43, 45, 49)
TEXT = (219, 222, 225)
WHITE = (242, 243, 245)
MUTED = (148, 155, 164)
LINK = (0, 168, 252)
MENTION_BG = (60, 66, 112)
MENTION_FG = (201, 205, 251)
CODE_BG = (30, 31, 34)
BUTTON = {1: (88, 101, 242), 2: (78, 80, 88), 3: (36, 128, 70), 4: (218, 55, 60),
          5: (78, 80, 88)}
FONT_FILES = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
              "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
BOLD_FILES = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
              "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
LEFT = 72  # where a message's text starts, right of the avatar


@cache
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    for path in BOLD_FILES if bold else FONT_FILES:
        try:
            # Index 0 of Noto Sans CJK is its Japanese face: it has Latin letters too.
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    raise RuntimeError("no font found: install fonts-noto-cjk or fonts-dejavu-core")


@dataclass
class Names:
    """How mentions and timestamps read: user and channel names, and the moment drawn."""

    users: dict[int, str] = field(default_factory=dict)
    channels: dict[int, str] = field(default_factory=dict)
    now: float = 0.0


@dataclass(frozen=True)
class Run:
    text: str
    bold: bool = False
    colour: tuple[int, int, int] = TEXT
    background: tuple[int, int, int] | None = None
    strike: bool = False


def relative(at: float, now: float) -> str:
    seconds = at - now
    span = abs(seconds)
    if span < 45:
        amount = "a few seconds"
    elif span < 90:
        amount = "a minute"
    elif span < 45 * 60:
        amount = f"{round(span / 60)} minutes"
    elif span < 90 * 60:
        amount = "an hour"
    elif span < 22 * 3600:
        amount = f"{round(span / 3600)} hours"
    elif span < 36 * 3600:
        amount = "a day"  # as Discord says it, not "1 days"
    else:
        amount = f"{round(span / 86400)} days"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def timestamp(at: float, style: str, now: float) -> str:
    if style == "R":
        return relative(at, now)
    moment = dt.datetime.fromtimestamp(at, dt.UTC)
    if style == "t":
        return moment.strftime("%H:%M")
    if style == "d":
        return moment.strftime("%d/%m/%Y")
    return moment.strftime("%d %B %Y %H:%M")


_TOKEN = re.compile(
    r"(\*\*(?P<bold>.+?)\*\*|~~(?P<strike>.+?)~~|<@!?(?P<user>\d+)>|<#(?P<channel>\d+)>|<t:(?P<ts>\d+)(?::(?P<st>\w))?>"
    r"|\[(?P<label>[^\]]+)\]\((?P<url>[^)]+)\)|(?P<bare>https?://\S+))"
)


def parse_line(line: str, names: Names, *, colour: tuple[int, int, int] = TEXT) -> list[Run]:
    """One line of Discord markdown as styled runs."""
    runs: list[Run] = []
    position = 0
    for match in _TOKEN.finditer(line):
        if match.start() > position:
            runs.append(Run(line[position:match.start()], colour=colour))
        if match["bold"] is not None:
            runs += [Run(r.text, True, r.colour, r.background, r.strike)
                     for r in parse_line(match["bold"], names, colour=WHITE)]
        elif match["strike"] is not None:
            runs += [Run(r.text, r.bold, r.colour, r.background, True)
                     for r in parse_line(match["strike"], names, colour=colour)]
        elif match["user"]:
            name = names.users.get(int(match["user"]), "member")
            runs.append(Run(f"@{name}", colour=MENTION_FG, background=MENTION_BG))
        elif match["channel"]:
            name = names.channels.get(int(match["channel"]), "channel")
            runs.append(Run(f"#{name}", colour=MENTION_FG, background=MENTION_BG))
        elif match["ts"]:
            shown = timestamp(float(match["ts"]), match["st"] or "f", names.now)
            runs.append(Run(shown, colour=colour, background=CODE_BG))
        elif match["label"]:
            runs.append(Run(match["label"], colour=LINK))
        else:
            runs.append(Run(match["bare"], colour=LINK))
        position = match.end()
    if position < len(line):
        runs.append(Run(line[position:], colour=colour))
    return [run for run in runs if run.text]


def _unescape(text: str) -> str:
    """Discord's markdown escapes, and mentions escaped with a zero-width space."""
    return re.sub(r"\\([*_~`|>#\-\[\]()])", r"\1", text).replace("\u200b", "")


class Canvas:
    """A tall image drawn top to bottom, cropped when done."""

    def __init__(self, height: int = 3000) -> None:
        self.image = Image.new("RGB", (WIDTH, height), BG)
        self.draw = ImageDraw.Draw(self.image)
        self.y = 16

    def text_block(
        self, text: str, x: int, width: int, names: Names, *, size: int = 15,
        colour: tuple[int, int, int] = TEXT, spacing: int = 6, draw: bool = True,
        top: int | None = None,
    ) -> int:
        """Markdown ``text`` wrapped in ``width`` from ``x``; returns the height used."""
        y0 = self.y if top is None else top
        y = y0
        for raw in _unescape(text).split("\n"):
            line, line_size, line_colour, bar = raw, size, colour, False
            if line.startswith("-# "):
                line, line_size, line_colour = line[3:], size - 3, MUTED
            if line.startswith((">>> ", "> ")):
                line, bar = line.split(" ", 1)[1], True
            runs = parse_line(line, names, colour=line_colour)
            indent = 14 if bar else 0
            height = self._runs(runs, x + indent, y, width - indent, line_size, draw)
            if bar and draw:
                self.draw.rectangle((x, y, x + 3, y + height), fill=(78, 80, 88))
            y += height + spacing
        return max(0, y - y0 - spacing)

    def _runs(self, runs: list[Run], x0: int, y: int, width: int, size: int, draw: bool) -> int:
        line_height = int(size * 1.45)
        x = x0
        lines = 1
        for run in runs:
            face = font(size, run.bold)
            for word in re.findall(r"\S+\s*|\s+", run.text):
                advance = face.getlength(word)
                if x + face.getlength(word.rstrip()) > x0 + width and x > x0:
                    x = x0
                    y += line_height
                    lines += 1
                    word = word.lstrip()
                    advance = face.getlength(word)
                    if not word:
                        continue
                while face.getlength(word) > width and len(word) > 1:  # one very long word
                    cut = len(word)
                    while cut > 1 and x + face.getlength(word[:cut]) > x0 + width:
                        cut -= 1
                    self._word(word[:cut], x, y, face, run, draw, size)
                    word = word[cut:]
                    x = x0
                    y += line_height
                    lines += 1
                    advance = face.getlength(word)
                self._word(word, x, y, face, run, draw, size)
                x += advance
        return lines * line_height

    def _word(self, word: str, x: float, y: int, face: ImageFont.FreeTypeFont, run: Run,
              draw: bool, size: int) -> None:
        if not draw or not word:
            return
        if run.background is not None:
            right = x + face.getlength(word.rstrip())
            self.draw.rounded_rectangle((x - 2, y + 1, right + 2, y + size * 1.35), 3,
                                        fill=run.background)
        self.draw.text((x, y), word, font=face, fill=run.colour)
        if run.strike:
            middle = y + size * 0.75
            self.draw.line((x, middle, x + face.getlength(word.rstrip()), middle),
                           fill=run.colour, width=1)

    def crop(self) -> Image.Image:
        return self.image.crop((0, 0, WIDTH, self.y + 12))


def _picture(data: bytes | None, size: tuple[int, int]) -> Image.Image:
    if data:
        try:
            picture = Image.open(io.BytesIO(data)).convert("RGB")
            picture.thumbnail(size)
            return picture
        except OSError:
            pass
    return Image.new("RGB", size, (90, 94, 102))


def _circle(picture: Image.Image, diameter: int) -> tuple[Image.Image, Image.Image]:
    picture = picture.resize((diameter, diameter))
    mask = Image.new("L", (diameter, diameter), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, diameter - 1, diameter - 1), fill=255)
    return picture, mask


Fetch = Callable[[str], bytes | None]


def draw_message(
    canvas: Canvas, message: dict[str, Any], names: Names, fetch: Fetch, *,
    header: str | None = None, author: str = "Animate", bot: bool = True,
) -> None:
    """One message at the canvas's current height."""
    draw = canvas.draw
    if header:
        draw.text((LEFT, canvas.y), header, font=font(13), fill=MUTED)
        draw.line((36, canvas.y + 9, 36, canvas.y + 22), fill=(78, 80, 88), width=2)
        draw.line((36, canvas.y + 9, LEFT - 8, canvas.y + 9), fill=(78, 80, 88), width=2)
        canvas.y += 22
    top = canvas.y
    avatar = (88, 101, 242) if bot else (67, 181, 129)
    draw.ellipse((16, top + 2, 56, top + 42), fill=avatar)
    draw.text((36, top + 22), author[0].upper(), font=font(18, True), fill=WHITE, anchor="mm")
    draw.text((LEFT, top), author, font=font(16, True), fill=WHITE)
    x = LEFT + font(16, True).getlength(author) + 8
    if bot:
        draw.rounded_rectangle((x, top + 3, x + 34, top + 19), 3, fill=(88, 101, 242))
        draw.text((x + 17, top + 11), "APP", font=font(10, True), fill=WHITE, anchor="mm")
        x += 42
    draw.text((x, top + 3), "Today at 09:41", font=font(12), fill=MUTED)
    canvas.y = top + 26
    width = WIDTH - LEFT - 24
    if message.get("content"):
        canvas.y += canvas.text_block(message["content"], LEFT, width, names) + 6
    used = {_attachment_name(e) for e in message.get("embeds") or []} - {None}
    for attachment in message.get("attachments") or []:
        if attachment["filename"] in used:
            continue  # an attachment an embed shows is not shown again
        _draw_attachment(canvas, attachment, fetch)
    for embed in message.get("embeds") or []:
        _draw_embed(canvas, embed, names, fetch, message.get("attachments") or [])
    _draw_components(canvas, message.get("components") or [])
    if message.get("flags", 0) & 64:
        eye = (LEFT + 1, canvas.y + 6, LEFT + 15, canvas.y + 14)
        draw.ellipse(eye, outline=MUTED, width=1)
        draw.ellipse((LEFT + 5, canvas.y + 7, LEFT + 11, canvas.y + 13), fill=MUTED)
        draw.text((LEFT + 22, canvas.y + 2), "Only you can see this · ", font=font(12),
                  fill=MUTED)
        dismiss_x = LEFT + 22 + font(12).getlength("Only you can see this · ")
        draw.text((dismiss_x, canvas.y + 2), "Dismiss message", font=font(12), fill=LINK)
        canvas.y += 22
    canvas.y = max(canvas.y, top + 48) + 14


def _attachment_name(embed: dict[str, Any]) -> str | None:
    for url in (embed.get("thumbnail", {}).get("url"), embed.get("image", {}).get("url"),
                embed.get("author", {}).get("icon_url")):
        if url and url.startswith("attachment://"):
            return str(url.removeprefix("attachment://"))
    return None


def _media(url: str | None, attachments: Iterable[dict[str, Any]], fetch: Fetch) -> bytes | None:
    if not url:
        return None
    if url.startswith("attachment://"):
        name = url.removeprefix("attachment://")
        for attachment in attachments:
            if attachment["filename"] == name:
                return fetch(attachment["url"])
        return None
    return fetch(url)


def _draw_attachment(canvas: Canvas, attachment: dict[str, Any], fetch: Fetch) -> None:
    draw = canvas.draw
    name = attachment["filename"]
    if name.endswith(".mp4") or (attachment.get("content_type") or "").startswith("video/"):
        box = (LEFT, canvas.y, LEFT + 400, canvas.y + 225)
        frame = _picture(fetch(attachment.get("poster", "")) if attachment.get("poster") else None,
                         (400, 225))
        canvas.image.paste(frame.resize((400, 225)), box[:2])
        draw.rectangle(box, outline=(30, 31, 34), width=2)
        cx, cy = LEFT + 200, canvas.y + 112
        draw.ellipse((cx - 28, cy - 28, cx + 28, cy + 28), fill=(0, 0, 0))
        draw.polygon([(cx - 9, cy - 14), (cx - 9, cy + 14), (cx + 15, cy)], fill=WHITE)
        draw.rectangle((LEFT, canvas.y + 225 - 26, LEFT + 400, canvas.y + 225), fill=(0, 0, 0))
        draw.text((LEFT + 10, canvas.y + 225 - 21), f"▶  0:00 / 0:05   {name}", font=font(12),
                  fill=WHITE)
        canvas.y += 225 + 8
        return
    picture = _picture(fetch(attachment["url"]), (300, 300))
    canvas.image.paste(picture, (LEFT, canvas.y))
    canvas.y += picture.height + 8


def _draw_embed(canvas: Canvas, embed: dict[str, Any], names: Names, fetch: Fetch,
                attachments: list[dict[str, Any]]) -> None:
    draw = canvas.draw
    colour = embed.get("color")
    bar = ((colour >> 16) & 255, (colour >> 8) & 255, colour & 255) if colour else (30, 31, 34)
    thumb_url = embed.get("thumbnail", {}).get("url")
    thumb = _media(thumb_url, attachments, fetch) if thumb_url else None
    inner_x = LEFT + 16
    only_author = set(embed) - {"type", "color", "flags", "author"} == set()
    inner_w = 500 - 32 - (96 if thumb_url else 0)
    box_w = 500 if not only_author else 0
    top = canvas.y

    def body(draw_it: bool) -> int:
        y = top + (8 if only_author else 12)
        if "author" in embed:
            author = embed["author"]
            icon = _media(author.get("icon_url"), attachments, fetch)
            ax = inner_x
            if author.get("icon_url"):
                if draw_it:
                    picture, mask = _circle(_picture(icon, (48, 48)), 24)
                    canvas.image.paste(picture, (ax, y), mask)
                ax += 32
            if draw_it:
                draw.text((ax, y + 2), author["name"], font=font(14, True), fill=WHITE)
            y += 28
        if embed.get("title"):
            y += canvas.text_block(f"**{embed['title']}**", inner_x, inner_w, names, size=16,
                                   colour=WHITE, draw=draw_it, top=y) + 6
        if embed.get("description"):
            y += canvas.text_block(embed["description"], inner_x, inner_w, names, size=14,
                                   draw=draw_it, top=y) + 6
        fields = embed.get("fields") or []
        column = 0
        row_height = 0
        for item in fields:
            inline = item.get("inline", False)
            width = (inner_w // 3 - 8) if inline else inner_w
            fx = inner_x + (column * (inner_w // 3) if inline else 0)
            if not inline and column:
                y += row_height + 6
                column, row_height = 0, 0
                fx = inner_x
            h = canvas.text_block(f"**{item['name']}**", fx, width, names, size=14,
                                  draw=draw_it, top=y)
            h += canvas.text_block(item["value"], fx, width, names, size=14, draw=draw_it,
                                   top=y + h + 2) + 2
            if inline:
                row_height = max(row_height, h)
                column += 1
                if column == 3:
                    y += row_height + 8
                    column, row_height = 0, 0
            else:
                y += h + 8
        if column:
            y += row_height + 8
        if embed.get("footer"):
            y += canvas.text_block(embed["footer"]["text"], inner_x, inner_w, names, size=12,
                                   colour=MUTED, draw=draw_it, top=y + 4) + 6
        bottom = y + (4 if only_author else 6)
        if thumb_url:
            bottom = max(bottom, top + 12 + 80 + 12)
        return bottom

    bottom = body(False)
    right = LEFT + (box_w or int(font(14, True).getlength(embed.get("author", {}).get(
        "name", "")) + 32 + 16 + 16))
    draw.rounded_rectangle((LEFT, top, right, bottom), 4, fill=EMBED_BG)
    draw.rounded_rectangle((LEFT, top, LEFT + 4, bottom), 2, fill=bar)
    body(True)
    if thumb_url:
        picture = _picture(thumb, (80, 80))
        canvas.image.paste(picture, (right - 16 - picture.width, top + 12))
    canvas.y = bottom + 8


def _draw_components(canvas: Canvas, rows: list[dict[str, Any]]) -> None:
    draw = canvas.draw
    for row in rows:
        x = LEFT
        for button in row.get("components", []):
            label = button.get("label") or ""
            link = button.get("style") == 5
            width = int(font(14).getlength(label)) + 32 + (18 if link else 0)
            colour = BUTTON.get(int(button.get("style", 2)), BUTTON[2])
            if button.get("disabled"):
                colour = tuple(int(c * 0.6) for c in colour)  # type: ignore[assignment]
            draw.rounded_rectangle((x, canvas.y, x + width, canvas.y + 32), 4, fill=colour)
            draw.text((x + 16, canvas.y + 7), label, font=font(14), fill=WHITE)
            if link:
                ax, ay = x + width - 22, canvas.y + 11  # Discord's "opens a link" arrow
                draw.line((ax, ay + 10, ax + 10, ay), fill=WHITE, width=2)
                draw.line((ax + 3, ay, ax + 10, ay), fill=WHITE, width=2)
                draw.line((ax + 10, ay, ax + 10, ay + 7), fill=WHITE, width=2)
            x += width + 8
        canvas.y += 40
