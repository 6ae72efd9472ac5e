"""The application-command registry: bulk overwrite, upsert, get and delete, with Discord's
validation of names, options and localisations.

Part of :class:`~tests.fakes.fake_discord.FakeDiscord` (a mixin: the state lives in
``FakeDiscord.__init__``)."""

from __future__ import annotations

import copy
import re

from tests.fakes.fake_discord.model import (
    _COMMAND_NAME_RE,
    DISCORD_LOCALES,
    JSONDict,
    _Ctx,
    _error,
    _FakeHTTPError,
    _form_error,
    _Reply,
)


class CommandsMixin:
    def _command_scope(self, m: re.Match[str]) -> tuple[list[JSONDict], int | None]:
        if int(m[1]) != self.application_id:
            raise _FakeHTTPError(_error(403, 50001, "Missing Access"))
        if m.re.pattern.startswith("/applications/(\\d+)/guilds/"):
            gid = int(m[2])
            if gid != self.guild_id:
                raise _FakeHTTPError(_error(403, 50001, "Missing Access"))
            return self.guild_commands.setdefault(gid, []), gid
        return self.global_commands, None

    @staticmethod
    def _validate_localizations(item: JSONDict, where: str, *, lower: bool | None) -> None:
        """``name_localizations``/``description_localizations`` as Discord checks them: known
        locales only, each localised name valid as a name (``lower=None``: a choice, any text),
        each description 1-100 long."""
        for field_name in ("name_localizations", "description_localizations"):
            for locale, text in (item.get(field_name) or {}).items():
                loc = f"{where}.{field_name}.{locale}"
                if locale not in DISCORD_LOCALES:
                    raise _FakeHTTPError(
                        _form_error(loc, "LOCALE_INVALID", f"Invalid locale {locale!r}")
                    )
                text = str(text)
                if field_name == "description_localizations" or lower is None:
                    ok = 1 <= len(text) <= 100
                else:
                    ok = bool(_COMMAND_NAME_RE.match(text)) and (not lower or text == text.lower())
                if not ok:
                    raise _FakeHTTPError(
                        _form_error(loc, "APPLICATION_COMMAND_INVALID_NAME", "Invalid localization")
                    )

    def _validate_options(self, options: list[JSONDict], where: str) -> None:
        if len(options) > 25:
            raise _FakeHTTPError(
                _form_error(
                    f"{where}.options", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                )
            )
        seen_optional = False
        names: set[str] = set()
        for i, opt in enumerate(options):
            loc = f"{where}.options.{i}"
            name = str(opt.get("name", ""))
            if not _COMMAND_NAME_RE.match(name) or name != name.lower():
                raise _FakeHTTPError(
                    _form_error(
                        f"{loc}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                    )
                )
            if name in names:
                raise _FakeHTTPError(
                    _form_error(
                        f"{loc}.name",
                        "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                        "Option name already exists",
                    )
                )
            names.add(name)
            self._validate_localizations(opt, loc, lower=True)
            for j, choice in enumerate(opt.get("choices") or []):
                self._validate_localizations(choice, f"{loc}.choices.{j}", lower=None)
            if not 1 <= len(str(opt.get("description", ""))) <= 100:
                raise _FakeHTTPError(
                    _form_error(
                        f"{loc}.description",
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 100 in length.",
                    )
                )
            if len(opt.get("choices") or []) > 25:
                raise _FakeHTTPError(
                    _form_error(
                        f"{loc}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                    )
                )
            if opt.get("type") in (1, 2):
                self._validate_options(list(opt.get("options") or []), loc)
            elif opt.get("required"):
                if seen_optional:
                    raise _FakeHTTPError(
                        _form_error(
                            loc,
                            "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                            "Required options must be placed before non-required options",
                        )
                    )
            else:
                seen_optional = True

    def _make_command(
        self, body: JSONDict, existing: list[JSONDict], guild_id: int | None, index: int
    ) -> JSONDict:
        ctype = int(body.get("type") or 1)
        name = str(body.get("name", ""))
        where = str(index)
        if not _COMMAND_NAME_RE.match(name) or (ctype == 1 and name != name.lower()):
            raise _FakeHTTPError(
                _form_error(
                    f"{where}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            )
        if ctype == 1:
            if not 1 <= len(str(body.get("description", ""))) <= 100:
                raise _FakeHTTPError(
                    _form_error(
                        f"{where}.description",
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 100 in length.",
                    )
                )
            self._validate_options(list(body.get("options") or []), where)
        self._validate_localizations(body, where, lower=ctype == 1)
        prev = next((c for c in existing if c["name"] == name and c.get("type", 1) == ctype), None)
        cmd = copy.deepcopy(body)
        cmd.update(
            id=prev["id"] if prev else str(self._snowflake()),
            application_id=str(self.application_id),
            version=str(self._snowflake()),
            type=ctype,
        )
        cmd.setdefault("description", "")
        cmd.setdefault("default_member_permissions", None)
        cmd.setdefault("nsfw", False)
        if guild_id is not None:
            cmd["guild_id"] = str(guild_id)
        return cmd

    async def _rt_list_commands(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        commands, _ = self._command_scope(m)
        return _Reply(200, copy.deepcopy(commands))

    async def _rt_put_commands(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        commands, gid = self._command_scope(m)
        if not isinstance(ctx.json, list):
            return _error(400, 50035, "Invalid Form Body")
        new = [self._make_command(b, commands, gid, i) for i, b in enumerate(ctx.json)]
        keys = [(c["name"], c["type"]) for c in new]
        if len(set(keys)) != len(keys):
            return _error(
                400,
                50035,
                "Invalid Form Body",
                {
                    "_errors": [
                        {
                            "code": "APPLICATION_COMMANDS_DUPLICATE_NAME",
                            "message": "Application command names must be unique",
                        }
                    ]
                },
            )
        commands[:] = new
        if gid is None:
            self.command_syncs += 1
        else:
            self.guild_command_syncs += 1
        return _Reply(200, copy.deepcopy(new))

    async def _rt_upsert_command(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        commands, gid = self._command_scope(m)
        cmd = self._make_command(ctx.body, commands, gid, 0)
        for i, c in enumerate(commands):
            if c["id"] == cmd["id"]:
                commands[i] = cmd
                return _Reply(200, copy.deepcopy(cmd))
        commands.append(cmd)
        return _Reply(201, copy.deepcopy(cmd))

    async def _rt_get_command(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        commands, _ = self._command_scope(m)
        cid = m[m.re.groups]
        cmd = next((c for c in commands if c["id"] == cid), None)
        if cmd is None:
            return _error(404, 10063, "Unknown application command")
        return _Reply(200, copy.deepcopy(cmd))

    async def _rt_delete_command(self, ctx: _Ctx, m: re.Match[str]) -> _Reply:
        commands, _ = self._command_scope(m)
        cid = m[m.re.groups]
        before = len(commands)
        commands[:] = [c for c in commands if c["id"] != cid]
        if len(commands) == before:
            return _error(404, 10063, "Unknown application command")
        return _Reply(204)
