"""Principals: who is calling, and the RoleBinding subjects they match."""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from typing import Literal

from onexd.errors import UsageError

SUBJECT_KINDS = ("UnixUser", "UnixGroup", "Token", "ApiKey")


@dataclass(frozen=True, slots=True)
class Principal:
    """A Unix peer (with its groups), a token subject, or an API key name.

    A token of an external issuer is namespaced by it: `sub: ci-bot` from https://idp.example is
    `Token:https://idp.example#ci-bot`, never onexd's own `Token:ci-bot` (subjects onexd issues cannot hold `#`).
    """

    kind: Literal["unix", "token", "apikey", "group"]
    name: str
    uid: int | None = None
    gids: tuple[int, ...] = ()
    user_name: str | None = None
    group_names: tuple[str, ...] = ()
    pid: int | None = None
    issuer: str | None = None  # tokens of an external issuer only

    @property
    def qualified(self) -> str:
        """The name bindings match: a token subject of an external issuer carries the issuer."""
        return self.name if self.issuer is None else f"{self.issuer}#{self.name}"

    def subjects(self) -> tuple[tuple[str, str], ...]:
        """The (kind, name) RoleBinding subjects this principal matches."""
        if self.kind == "token":
            return (("Token", self.qualified),)
        if self.kind == "apikey":
            return (("ApiKey", self.name),)
        out: list[tuple[str, str]] = []
        if self.uid is not None:
            out.append(("UnixUser", str(self.uid)))
        if self.user_name:
            out.append(("UnixUser", self.user_name))
        out += [("UnixGroup", str(g)) for g in self.gids]
        out += [("UnixGroup", n) for n in self.group_names]
        return tuple(dict.fromkeys(out))

    @property
    def display(self) -> str:
        if self.kind == "unix":
            return f"UnixUser:{self.user_name or self.uid}"
        if self.kind == "group":
            return f"UnixGroup:{self.name}"
        return f"{'Token' if self.kind == 'token' else 'ApiKey'}:{self.qualified}"


def unix_principal(uid: int, gid: int, pid: int | None = None) -> Principal:
    """A Unix peer with its supplementary groups from the group database."""
    try:
        entry = pwd.getpwuid(uid)
        user_name: str | None = entry.pw_name
        gids = tuple(dict.fromkeys([gid, *os.getgrouplist(entry.pw_name, gid)]))
    except KeyError:
        user_name, gids = None, (gid,)
    names = []
    for g in gids:
        try:
            names.append(grp.getgrgid(g).gr_name)
        except KeyError:
            continue
    return Principal(kind="unix", name=user_name or str(uid), uid=uid, gids=gids, user_name=user_name,
                     group_names=tuple(names), pid=pid)


def parse_subject(text: str, label: str = "--as") -> Principal:
    """`KIND:NAME` as on the command line (`UnixUser:alice`, `UnixUser:1000`, `UnixGroup:dev`, ...); errors name
    `label`, the option or field the text came from (the API says `subject`, never a command-line flag)."""
    kind, sep, name = text.partition(":")
    if not sep or not name or kind not in SUBJECT_KINDS:
        raise UsageError(f"{label} {text!r}: expected KIND:NAME with KIND one of {', '.join(SUBJECT_KINDS)}")
    if kind == "Token":  # `Token:NAME` (onexd's own) or `Token:ISSUER#NAME` (an external issuer's)
        issuer, hash_, sub = name.rpartition("#")
        return Principal(kind="token", name=sub, issuer=issuer) if hash_ and issuer and sub else \
            Principal(kind="token", name=name)
    if kind == "ApiKey":
        return Principal(kind="apikey", name=name)
    if kind == "UnixGroup":
        gid: int | None
        try:
            gid = int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
            gname = grp.getgrgid(gid).gr_name if name.isdigit() else name
        except KeyError:
            gid, gname = (int(name), name) if name.isdigit() else (None, name)
        return Principal(kind="group", name=name, gids=(gid,) if gid is not None else (),
                         group_names=(gname,) if not gname.isdigit() else ())
    try:
        uid = int(name) if name.isdigit() else pwd.getpwnam(name).pw_uid
    except KeyError:
        raise UsageError(f"{label} {text!r}: no such user on this system") from None
    try:
        gid0 = pwd.getpwuid(uid).pw_gid
    except KeyError:
        return Principal(kind="unix", name=name, uid=uid)
    return unix_principal(uid, gid0)
