"""Query parameters are read as the schema describes them: what django-filter and DRF
would quietly drop (an empty value, a repeated one, a boolean spelled `1`, a page size
that is not a number) is a 400 naming the parameter, never an answer as if it had not
been given."""

import pytest

pytestmark = pytest.mark.django_db


def fields_of(response):
    assert response.status_code == 400, response.content
    return response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/v1/analytics/summary/?until=", "until"),
        ("/api/v1/analytics/summary/?since=", "since"),
        ("/api/v1/analytics/summary/?team=", "team"),
        ("/api/v1/audit-events/?until=", "until"),
        ("/api/v1/users/?role=", "role"),
        ("/api/v1/sessions/?mode=", "mode"),
        ("/api/v1/knowledge/documents/?uploaded_since=", "uploaded_since"),
    ],
)
def test_a_filter_given_with_no_value_is_refused_naming_it(api_as, carol, url, parameter):
    assert fields_of(api_as(carol).get(url)) == {
        parameter: ["Give a value, or leave this parameter out."]
    }


def test_a_filter_given_twice_is_refused(api_as, carol):
    response = api_as(carol).get("/api/v1/analytics/summary/?until=2026-01-01T00:00:00Z&until=")
    assert fields_of(response) == {"until": ["Give this parameter once."]}
    response = api_as(carol).get("/api/v1/users/?role=learner&role=manager")
    assert fields_of(response) == {"role": ["Give this parameter once."]}


def test_booleans_are_true_or_false_only(api_as, carol, bob):
    for value in ("1", "yes", "-911", "True"):
        response = api_as(carol).get(f"/api/v1/users/?is_active={value}")
        assert fields_of(response) == {"is_active": ['Must be "true" or "false".']}
    listed = api_as(carol).get("/api/v1/users/?is_active=true")
    assert bob.email in [user["email"] for user in listed.json()["results"]]
    assert api_as(carol).get("/api/v1/users/?is_active=false").json()["results"] == []


def test_free_text_filters_may_be_empty(api_as, carol):
    assert api_as(carol).get("/api/v1/users/?email=").status_code == 200
    assert api_as(carol).get("/api/v1/scenarios/?title=").status_code == 200


@pytest.mark.parametrize("value", ["", "abc", "0", "-3", "2.5", "true", "last"])
def test_page_and_page_size_are_whole_numbers_from_one(api_as, carol, value):
    for parameter in ("page", "page_size"):
        response = api_as(carol).get(f"/api/v1/users/?{parameter}={value}")
        assert fields_of(response) == {parameter: ["A whole number from 1 is required."]}
    response = api_as(carol).get(f"/api/v1/sessions/?page_size={value}")
    assert fields_of(response) == {"page_size": ["A whole number from 1 is required."]}


def test_a_page_size_above_the_maximum_is_capped(api_as, carol):
    response = api_as(carol).get("/api/v1/users/?page_size=100000&page=1")
    assert response.status_code == 200
    assert len(response.json()["results"]) >= 1
