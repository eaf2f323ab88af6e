"""The notification catalog against the domain apps: every kind of event they write is in it,
each kind someone is told of has a recipient rule and its three templates, and the roles agree
with what the domain app addresses. The kinds are read from the domain's own source (its event
functions' calls and its `NOTIFY` tables), never typed into this test."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest
from django.template.loader import get_template

import disputes.events
import refunds.events
from notifications.catalog import CATALOG, told_kinds
from notifications.services import template_exists

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_APPS = ("orders", "payouts", "refunds", "disputes")
_KIND = re.compile(r"^[a-z]+\.[a-z_]+$")
# The writer under every event function: without a `notify` argument it tells nobody. (The case
# and dispute event functions default to their app's `NOTIFY`, read above.)
_WRITERS = {"event_record", "event_build"}
UNKNOWN = None  # the recipients are computed (from the author, or in a payload built by hand)


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _roles(call: ast.Call, keywords: dict[str, ast.expr]) -> tuple[str, ...] | None:
    notify = keywords.get("notify")
    if notify is None:
        return () if _callee(call) in _WRITERS else UNKNOWN
    try:
        return tuple(ast.literal_eval(notify))
    except ValueError:
        return UNKNOWN


def written_kinds() -> dict[str, set[tuple[str, ...] | None]]:
    """Every event kind the domain apps write, with the roles each writer addresses."""
    kinds: dict[str, set[tuple[str, ...] | None]] = defaultdict(set)
    for table in (refunds.events.NOTIFY, disputes.events.NOTIFY):
        for kind, roles in table.items():
            kinds[kind].add(roles)
    for app in DOMAIN_APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for call in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(call, ast.Call):
                    continue
                keywords = {k.arg: k.value for k in call.keywords if k.arg}
                for name in ("kind", "event_kind"):
                    node = keywords.get(name)
                    if isinstance(node, ast.Constant) and _KIND.match(str(node.value)):
                        kinds[node.value].add(_roles(call, keywords))
    return dict(kinds)


WRITTEN = written_kinds()


def test_the_catalog_names_exactly_the_kinds_the_domain_writes():
    # A kind written but missing here would go out with the generic template (or, if silent,
    # nobody would have decided so); a kind here that nothing writes is a dead declaration.
    assert sorted(set(WRITTEN) - set(CATALOG)) == []
    assert sorted(set(CATALOG) - set(WRITTEN)) == []


@pytest.mark.parametrize("kind", sorted(WRITTEN))
def test_who_is_told_agrees_with_what_the_domain_addresses(kind):
    notice = CATALOG[kind]
    assert set(notice.roles) <= {"buyer", "seller", "staff"}
    for roles in WRITTEN[kind] - {UNKNOWN}:
        if notice.except_author:
            # the domain leaves the author out: it addresses at most the catalog's roles
            assert set(roles) <= set(notice.roles), f"{kind}: the domain tells {roles}"
        else:
            assert set(roles) == set(notice.roles), f"{kind}: the domain tells {roles}"


@pytest.mark.parametrize("kind", sorted(told_kinds()))
def test_each_kind_someone_is_told_of_has_its_own_three_templates(kind):
    for suffix in ("subject.txt", "txt", "html"):
        get_template(f"emails/{kind}.{suffix}")  # raises TemplateDoesNotExist
    assert template_exists(kind)
