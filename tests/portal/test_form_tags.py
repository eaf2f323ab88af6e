"""`{% field %}` and `{% form_errors %}`: the same HTML as the partials they render, and never a
stale error."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.template.loader import get_template

from portal.forms.base import ReturnPolicyForm
from portal.forms.refunds import CaseMessageForm, EvidenceForm, ShipReturnForm


def by_tag(bound) -> str:
    return Template("{% load portal %}{% field f %}").render(Context({"f": bound}))


def by_partial(bound) -> str:
    return get_template("orders/partials/field.html").render({"field": bound})


@pytest.mark.parametrize(
    ("form_class", "name"),
    [(CaseMessageForm, "body"), (EvidenceForm, "file"), (EvidenceForm, "kind")],
)
def test_a_blank_field_is_the_partial(form_class, name):
    assert by_tag(form_class()[name]) == by_partial(form_class()[name])


def test_a_bound_field_shows_its_error_and_the_next_blank_form_does_not():
    blank = by_tag(ShipReturnForm()["carrier"])
    invalid = ShipReturnForm(data={"carrier": "", "tracking_number": "1Z"})
    assert not invalid.is_valid()

    # the error shows, next to the field, marked for assistive technology
    html = by_tag(invalid["carrier"])
    assert html == by_partial(invalid["carrier"])
    assert 'aria-invalid="true"' in html
    assert "This field is required." in html
    assert html != blank
    # and the next blank form is blank again
    assert by_tag(ShipReturnForm()["carrier"]) == blank
    assert "This field is required." not in blank


def test_prefixed_forms_keep_their_own_ids():
    plain = by_tag(CaseMessageForm()["body"])
    prefixed = by_tag(CaseMessageForm(prefix="reply")["body"])

    assert 'id="id_body"' in plain
    assert 'id="id_reply-body"' in prefixed


def test_a_form_with_initial_values_shows_them():
    # ReturnPolicyForm shows the shop's current policy
    week = by_tag(ReturnPolicyForm(initial={"number": 7, "unit": "days"})["number"])
    hour = by_tag(ReturnPolicyForm(initial={"number": 1, "unit": "hours"})["number"])

    assert 'value="7"' in week
    assert 'value="1"' in hour


def test_form_errors_render_only_errors_that_belong_to_no_field():
    tag = Template("{% load portal %}{% form_errors f %}")
    partial = get_template("orders/partials/form_errors.html")

    # a form nobody submitted, and a valid one: nothing at all
    assert tag.render(Context({"f": CaseMessageForm()})) == ""
    assert tag.render(Context({"f": CaseMessageForm(data={"body": "hi"})})) == ""
    assert tag.render(Context({"f": None})) == ""

    # a valid form the view then put a service's error on
    button = CaseMessageForm(data={"body": "hi"})
    assert button.is_valid()
    button.add_error(None, "The seller already answered.")
    html = tag.render(Context({"f": button}))
    assert "The seller already answered." in html
    assert 'role="alert"' in html
    assert html == partial.render({"form": button})
