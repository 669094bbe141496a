"""PII redaction with typed placeholders: ``[EMAIL]``, ``[PHONE]``, ``[IBAN]``, ``[CREDIT_CARD]``, ``[IP]``.

Regular expressions with validators, not a library: Presidio and scrubadub need spaCy language models
fetched from a model hub at install or run time (not reachable here) and bring heavy dependencies for
five patterns. Validators keep false positives down: card numbers must pass the Luhn check, IBANs the
ISO 13616 mod-97 check, IP addresses must parse (``ipaddress``), phone numbers need 7-15 digits and an
international (+/00), trunk (0) or bracketed prefix, or the North-American 3-3-4 grouping.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

KINDS = ("email", "iban", "credit_card", "ip", "phone")
"""Redaction order matters: long structured numbers go before phone numbers so they are not half-taken."""

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d ()./-]{5,20}\d(?![\w])")
NANP = re.compile(r"^\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    s = candidate.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _card(m: re.Match[str]) -> bool:
    digits = re.sub(r"\D", "", m.group())
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _ip(m: re.Match[str]) -> bool:
    try:
        ipaddress.ip_address(m.group())
    except ValueError:
        return False
    return True


def _phone(m: re.Match[str]) -> bool:
    text = m.group().strip()
    digits = re.sub(r"\D", "", text)
    if not 7 <= len(digits) <= 15 or text.count("(") != text.count(")"):
        return False
    return text.startswith(("+", "00", "0", "(")) or bool(NANP.match(text))


RULES: dict[str, tuple[re.Pattern[str], Callable[[re.Match[str]], bool] | None, str]] = {
    "email": (EMAIL, None, "[EMAIL]"),
    "iban": (IBAN, lambda m: iban_ok(m.group()), "[IBAN]"),
    "credit_card": (CARD, _card, "[CREDIT_CARD]"),
    "ip": (IPV4, _ip, "[IP]"),
    "ipv6": (IPV6, _ip, "[IP]"),
    "phone": (PHONE, _phone, "[PHONE]"),
}


def redact(text: str, kinds: tuple[str, ...] = KINDS) -> tuple[str, Counter[str]]:
    """``text`` with every PII match of ``kinds`` replaced by its placeholder, and the counts per placeholder."""
    counts: Counter[str] = Counter()
    for name, (pattern, valid, placeholder) in RULES.items():
        if (name if name != "ipv6" else "ip") not in kinds:
            continue

        def sub(m: re.Match[str], valid=valid, placeholder=placeholder) -> str:
            if valid is not None and not valid(m):
                return m.group()
            counts[placeholder] += 1
            return placeholder

        text = pattern.sub(sub, text)
    return text, counts
