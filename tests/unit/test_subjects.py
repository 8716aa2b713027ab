"""Certificate subjects: the forms operators write compare equal to what TLS reports."""

from __future__ import annotations

import pytest

from strata_server.core import subjects


def test_rfc4514_and_openssl_display_forms_match() -> None:
    reported = subjects.parse("CN=billing,OU=payments,O=acme")  # as gRPC reports it
    assert reported == ("CN=billing", "OU=payments", "O=acme")
    assert reported in subjects.keys("O = acme, OU = payments, CN = billing")  # openssl's
    assert reported in subjects.keys("cn=billing, ou=payments, o=acme")  # types any case


def test_values_are_compared_exactly() -> None:
    reported = subjects.parse("CN=billing,O=acme")
    assert reported not in subjects.keys("CN=Billing,O=acme")
    assert reported not in subjects.keys("CN=billing")
    assert reported not in subjects.keys("CN=billing,O=acme,C=DE")


def test_escaped_separators_stay_in_the_value() -> None:
    assert subjects.parse(r"CN=a\,b,O=x\=y") == (r"CN=a\,b", r"O=x\=y")
    assert subjects.parse("CN=trailing\\ ") == ("CN=trailing\\ ",)


@pytest.mark.parametrize("text", ["", "billing", "CN=", "=billing", "CN=a,,O=b", "CN=a,"])
def test_what_is_not_a_subject_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a certificate subject"):
        subjects.parse(text)
