"""Certificate subjects (X.509 distinguished names) as operators write them and as
TLS reports them, reduced to one comparable form.

gRPC reports a client certificate's subject in RFC 4514 form, most specific
part first (`CN=billing,O=acme`); `openssl x509 -noout -subject` prints the same
name in encoding order with spaces (`O = acme, CN = billing`). An operator may
copy either into the configuration, so a subject is compared as its sequence of
`TYPE=value` parts with the spaces around separators dropped and the attribute
types upper-cased, in either order. Values are compared exactly: the client
certificate authority, not this comparison, decides who holds which name.
"""

from __future__ import annotations

Subject = tuple[str, ...]
"""A subject's `TYPE=value` parts, in the order written."""


def parse(text: str) -> Subject:
    """The parts of a distinguished name; ValueError when it is not one."""
    parts: list[str] = []
    for raw in _split_unescaped(text, ","):
        kind, sep, value = _partition_unescaped(raw, "=")
        kind, value = kind.strip(), _strip(value)
        if not sep or not kind or not value:
            raise ValueError(
                f"{text!r} is not a certificate subject: write it as TYPE=value parts "
                'separated by commas, e.g. "CN=billing,O=acme"'
            )
        parts.append(f"{kind.upper()}={value}")
    return tuple(parts)


def keys(text: str) -> tuple[Subject, Subject]:
    """The forms under which a configured subject matches a certificate's: as
    written, and reversed (openssl's display order)."""
    subject = parse(text)
    return subject, subject[::-1]


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, start, index = [], 0, 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == separator:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts


def _partition_unescaped(text: str, separator: str) -> tuple[str, str, str]:
    first, *rest = _split_unescaped(text, separator)
    if not rest:
        return text, "", ""
    return first, separator, text[len(first) + 1 :]


def _strip(value: str) -> str:
    """`value` without the spaces around it, keeping an escaped trailing space."""
    stripped = value.strip()
    trailing_backslashes = len(stripped) - len(stripped.rstrip("\\"))
    if trailing_backslashes % 2 and value.rstrip() != value:
        stripped += " "
    return stripped
