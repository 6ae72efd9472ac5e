"""Attachments and the CDN: stored files, signed expiring links served by the fake, and upload
limits.

Part of :class:`~tests.fakes.fake_discord.FakeDiscord` (a mixin: the state lives in
``FakeDiscord.__init__``)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import mimetypes
from urllib.parse import quote, unquote

from aiohttp import web

from tests.fakes.fake_discord.model import (
    FakeFile,
    JSONDict,
    _error,
    _FakeHTTPError,
)


class CdnMixin:
    def add_attachment(
        self, data: bytes, filename: str, content_type: str | None = None
    ) -> JSONDict:
        """Store a file served by the fake and return its Discord attachment object."""
        return self.attachment_payload(self._store_file(data, filename, content_type))

    def _store_file(self, data: bytes, filename: str, content_type: str | None) -> FakeFile:
        f = FakeFile(filename, self._guess_type(filename, content_type), data, id=self._snowflake())
        self._files[f.id] = f
        return f

    def _signature(self, f: FakeFile, issued: int, expires: int) -> str:
        text = f"{f.id}/{f.filename}/{issued:x}/{expires:x}".encode()
        return hmac.new(self._url_secret, text, hashlib.sha256).hexdigest()

    def attachment_url(self, f: FakeFile) -> str:
        """A signed URL (``ex`` expiry, ``is`` issued, ``hm`` signature) issued now."""
        issued = int(self.now())
        expires = int(issued + self.attachment_url_lifetime)
        return (
            f"{self.base_url}/attachments/{f.id}/{quote(f.filename)}"
            f"?ex={expires:x}&is={issued:x}&hm={self._signature(f, issued, expires)}"
        )

    def attachment_payload(self, f: FakeFile) -> JSONDict:
        url = self.attachment_url(f)
        payload: JSONDict = {
            "id": str(f.id),
            "filename": f.filename,
            "size": f.size,
            "url": url,
            "proxy_url": url,
            "content_type": f.content_type,
        }
        if f.description is not None:
            payload["description"] = f.description
        return payload

    @staticmethod
    def _guess_type(filename: str, declared: str | None) -> str | None:
        if declared and declared != "application/octet-stream":
            return declared
        guessed, _ = mimetypes.guess_type(filename)
        return guessed or declared

    async def _handle_attachment(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        try:
            f = self._files.get(int(request.match_info["attachment_id"]))
        except ValueError:
            f = None
        if f is None or unquote(request.match_info["filename"]) != f.filename:
            await self._notify()
            return web.Response(status=404, text="404: Not Found")
        try:
            issued = int(request.query["is"], 16)
            expires = int(request.query["ex"], 16)
            valid = hmac.compare_digest(request.query["hm"], self._signature(f, issued, expires))
        except (KeyError, ValueError):
            valid = False
        await self._notify()
        if not valid or self.now() >= expires:
            self.expired_fetches += 1
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(body=f.data, content_type=f.content_type or "application/octet-stream")

    def _check_upload_size(self, files: list[FakeFile], limit: int) -> None:
        if sum(f.size for f in files) > limit:
            raise _FakeHTTPError(_error(413, 40005, "Request entity too large"))

    def _uploaded_files(
        self, body: JSONDict, uploads: list[tuple[int, FakeFile]]
    ) -> list[FakeFile]:
        """Give uploaded files ids, descriptions/filenames from ``attachments`` and store them."""
        meta: dict[int, JSONDict] = {}
        for entry in body.get("attachments") or []:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                meta[int(entry["id"])] = entry
        out: list[FakeFile] = []
        for index, f in uploads:
            entry = meta.get(index, {})
            stored = FakeFile(
                str(entry.get("filename") or f.filename),
                f.content_type,
                f.data,
                id=self._snowflake(),
                description=entry.get("description"),
            )
            self._files[stored.id] = stored
            out.append(stored)
        return out
