"""Strict list filters (docs/api.md, Paging and filters; Conventions, Strict input)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.http import QueryDict

EMPTY = "Give a value, or leave the parameter out."
REPEATED = "Give this parameter once."


def filter_value_refusal(query: Mapping[str, Any], name: str) -> str | None:
    """Why the list filter `name` of this query string is refused, or None.

    Given empty (`?role=`) or more than once (`?role=buyer&role=seller`), a filter would be read
    as "no filter" or as its last value: a client's mistake answered with a list it did not ask
    for, and input the schema does not allow (tests/security/test_schema_fuzz.py checks that
    invalid input is refused)."""
    if isinstance(query, QueryDict):
        values = query.getlist(name)
    else:
        values = [query[name]] if name in query else []
    if len(values) > 1:
        return REPEATED
    if values == [""]:
        return EMPTY
    return None


class StrictFilterForm(forms.Form):
    """The `Meta.form` of every API filter set: django-filter's own form ignores an empty
    value and reads the last of repeated ones."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in self.fields:
            if refusal := filter_value_refusal(self.data, name):
                self.add_error(name, refusal)
        return cleaned
