"""Kafka's ``ssl.principal.mapping.rules``: a certificate subject to a user name, without I/O.

The rules are Kafka's (``SslPrincipalMapper``): a comma-separated list of ``DEFAULT`` (the
distinguished name itself) and ``RULE:pattern/replacement/`` with an optional ``L`` or ``U``
after the last slash (lower- or upper-case the result). The first rule whose pattern matches the
whole RFC 2253 name wins; ``$1`` in a replacement is the first group, ``\\`` escapes. The
patterns are Java regular expressions; Python's ``re`` reads the common subset alike (named
groups ``(?<name>…)`` are translated), not ``\\p{…}`` classes or ``\\Q…\\E`` quoting.
No rule matching is an authentication failure, as in Kafka.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Kafka's RULE_PATTERN and RULE_SPLITTER, verbatim (SslPrincipalMapper.java).
_RULE = r"(DEFAULT)|RULE:((\\.|[^\\/])*)/((\\.|[^\\/])*)/([LU]?).*?|(.*?)"
_RULE_PARSER = re.compile(_RULE)
_RULE_SPLITTER = re.compile(r"\s*(" + _RULE + r")\s*(,\s*|$)")
_JAVA_NAMED_GROUP = re.compile(r"\(\?<(?![=!])")


class NoMatchingRule(ValueError):
    """No mapping rule applies to a distinguished name (the client is refused)."""


#: A replacement compiled into pieces: literal text, or a group (number or name) to insert.
_Piece = str | int | tuple[str]


def _replacement(text: str, groups: int, names: Sequence[str]) -> list[_Piece]:
    """Java's ``Matcher.appendReplacement`` syntax, with Kafka's escaping of ``$n`` beyond the
    pattern's groups (those stay literal)."""
    pieces: list[_Piece] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            if index + 1 == len(text):
                raise ValueError(f"replacement {text!r} ends with an escape")
            literal.append(text[index + 1])
            index += 2
            continue
        if char != "$":
            literal.append(char)
            index += 1
            continue
        following = text[index + 1 : index + 2]
        if following == "{":
            end = text.find("}", index)
            name = text[index + 2 : end] if end > 0 else ""
            if name not in names:
                raise ValueError(f"replacement {text!r}: no group named {name!r}")
            piece: _Piece = (name,)
            index = end + 1
        elif following.isdigit():
            number = int(following)
            if number > groups and not following.startswith("0"):
                literal.append("$")  # Kafka escapes it: "$7" with fewer groups is text
                index += 1
                continue
            index += 2
            # As Java: take more digits while they still name a group.
            while index < len(text) and text[index].isdigit() \
                    and number * 10 + int(text[index]) <= groups:
                number = number * 10 + int(text[index])
                index += 1
            piece = number
        else:
            raise ValueError(f"replacement {text!r}: '$' must be followed by a group")
        if literal:
            pieces.append("".join(literal))
            literal = []
        pieces.append(piece)
    if literal:
        pieces.append("".join(literal))
    return pieces


@dataclass(frozen=True)
class Rule:
    """One rule: DEFAULT (``pattern`` None) or a pattern, a replacement and a case change."""

    pattern: re.Pattern[str] | None
    replacement: tuple[_Piece, ...] = ()
    case: str = ""  # "L", "U" or ""

    def apply(self, name: str) -> str | None:
        """The mapped name, or None when this rule does not match ``name`` as a whole."""
        if self.pattern is None:
            return name
        if self.pattern.fullmatch(name) is None:
            return None
        pieces = self.replacement

        def expand(match: re.Match[str]) -> str:
            out = []
            for piece in pieces:
                if isinstance(piece, str):
                    out.append(piece)
                else:
                    group = match.group(piece if isinstance(piece, int) else piece[0])
                    out.append(group or "")
            return "".join(out)

        # Java's replaceAll: every match (the whole name, and an empty match at its end for
        # a pattern such as ".*", exactly as Kafka does).
        result = self.pattern.sub(expand, name)
        if self.case == "L":
            return result.lower()
        if self.case == "U":
            return result.upper()
        return result


def _parse_rule(text: str) -> Rule | None:
    match = _RULE_PARSER.match(text)
    if match is None or match.end() != len(text):
        rest = text[match.end():] if match is not None else text
        raise ValueError(f"invalid principal mapping rule {text!r} (unmatched: {rest!r})")
    if match.group(1) is not None:
        return Rule(None)
    if match.group(2) is None:
        return None  # an empty rule, ignored as in Kafka
    source = _JAVA_NAMED_GROUP.sub("(?P<", match.group(2))
    try:
        pattern = re.compile(source)
    except re.error as error:
        raise ValueError(f"invalid pattern in principal mapping rule {text!r}: {error}") from None
    replacement = _replacement(match.group(4), pattern.groups, tuple(pattern.groupindex))
    return Rule(pattern, tuple(replacement), match.group(6))


def split_rules(rules: str) -> list[str]:
    """The rules of an ``ssl.principal.mapping.rules`` value, as Kafka splits them."""
    return [match.group(1) for match in _RULE_SPLITTER.finditer(rules.strip())]


def parse_rules(rules: str) -> list[Rule]:
    """Parse ``ssl.principal.mapping.rules``; ValueError says which rule is wrong."""
    parsed = [rule for rule in map(_parse_rule, split_rules(rules)) if rule is not None]
    if not parsed:
        raise ValueError(f"no principal mapping rule in {rules!r} (DEFAULT keeps the name)")
    return parsed


def principal_mapper(rules: str) -> Callable[[str], str]:
    """``ssl.principal.mapping.rules`` as a function of a distinguished name; it raises
    :class:`NoMatchingRule` when no rule applies."""
    parsed = parse_rules(rules)

    def map_name(distinguished_name: str) -> str:
        for rule in parsed:
            mapped = rule.apply(distinguished_name)
            if mapped is not None:
                return mapped
        raise NoMatchingRule(f"no principal mapping rule applies to {distinguished_name!r}")

    return map_name
