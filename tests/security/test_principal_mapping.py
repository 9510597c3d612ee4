"""Kafka's ssl.principal.mapping.rules, with the cases of Kafka's SslPrincipalMapperTest, and
the RFC 2253 names of certificate subjects (as Java's X500Principal.getName() writes them)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from headrace.security.principal_mapping import (
    NoMatchingRule,
    parse_rules,
    principal_mapper,
    split_rules,
)
from headrace.security.tls import rfc2253_name

KAFKA_RULES = ", ".join((
    "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
    "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
    "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
    "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
    "DEFAULT",
))


@pytest.mark.parametrize(("name", "expected"), [
    ("CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke"),
    ("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme"),
    ("cn=duke,ou=sme,dc=mycp,dc=com", "DUKE@SME"),
    ("cN=duke,OU=JavaSoft,O=Sun Microsystems", "DUKE"),
    ("OU=JavaSoft,O=Sun Microsystems,C=US", "OU=JavaSoft,O=Sun Microsystems,C=US"),
])
def test_kafka_mapper_cases(name: str, expected: str) -> None:
    assert principal_mapper(KAFKA_RULES)(name) == expected


def test_escaped_commas_and_slashes_stay_inside_a_rule() -> None:
    rules = r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT"
    assert principal_mapper(rules)(r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz") == r"Tkac\, Adam"
    assert principal_mapper(r"RULE:^CN=(.*)\/x$/$1/")("CN=a/x") == "a"


def test_back_references_beyond_the_groups_are_text() -> None:
    assert principal_mapper("RULE:^CN=(.*)$/$1-$2/")("CN=bob") == "bob-$2"
    assert principal_mapper(r"RULE:^CN=(.*)$/\$1/")("CN=bob") == "$1"
    assert principal_mapper("RULE:^CN=(?<user>.*)$/${user}/U")("CN=bob") == "BOB"


def test_without_default_an_unmatched_name_is_refused() -> None:
    with pytest.raises(NoMatchingRule):
        principal_mapper("RULE:^CN=(.*),OU=eng$/$1/")("CN=eve,OU=ops")


@pytest.mark.parametrize("rules", [
    "RULE:^CN=(.*)$/$1/X", "garbage", "RULE:(/x/", "RULE:^(.*)$/$x/", "", " , ",
])
def test_invalid_rules_are_refused(rules: str) -> None:
    with pytest.raises(ValueError):
        parse_rules(rules)


def test_rules_split_as_kafka_splits_them() -> None:
    assert split_rules(" DEFAULT ,RULE:a,b/c/L , DEFAULT")[:3] == [
        "DEFAULT", "RULE:a,b/c/L", "DEFAULT"]


NAMES = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40)


@given(NAMES)
def test_default_is_the_name_itself(name: str) -> None:
    assert principal_mapper("DEFAULT")(name) == name


@given(NAMES, st.sampled_from(["", "L", "U"]))
def test_a_catch_all_rule_applies_its_case(name: str, case: str) -> None:
    mapped = principal_mapper(f"RULE:^(.*)$/$1/{case}")(name)
    # Java's replaceAll also replaces the empty match at the end of a non-empty name.
    assert mapped == {"": name, "L": name.lower(), "U": name.upper()}[case]


@given(st.lists(st.sampled_from(["DEFAULT", "RULE:^CN=(.*)$/$1/L", r"RULE:a\/b/c/"]),
                min_size=1, max_size=5))
def test_joined_rules_split_back(rules: list[str]) -> None:
    assert [rule for rule in split_rules(", ".join(rules)) if rule] == rules


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def test_subjects_are_written_last_rdn_first_as_java_does() -> None:
    subject = _name((NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Acme, Inc"),
                    (NameOID.ORGANIZATIONAL_UNIT_NAME, "Eng"), (NameOID.COMMON_NAME, "alice"))
    assert rfc2253_name(subject) == r"CN=alice,OU=Eng,O=Acme\, Inc,C=US"


def test_attributes_without_an_rfc2253_keyword_are_hex_der() -> None:
    subject = _name((NameOID.EMAIL_ADDRESS, "a@b.c"), (NameOID.COMMON_NAME, "alice"))
    # What X500Principal.getName() gives: the IA5String's DER as hex.
    assert rfc2253_name(subject) == "CN=alice,1.2.840.113549.1.9.1=#16056140622e63"
