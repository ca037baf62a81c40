"""Mail headers from untrusted text, and a serialisation that refuses a broken header.

A feed title becomes a subject. Stripping CR and LF from it is not enough: the email package
decodes RFC 2047 encoded words in a header value it is given, so a title carrying
`=?utf-8?q?=0D=0ABcc:_victim@example.org?=` passes a control-character filter and is then
written out as a real line break and a real Bcc header (or as a blank line that starts the
body early). So `header_text` decodes encoded words first, as often as they nest, strips
every line break and control character from the result (CR, LF, U+0085, U+2028, U+2029, the
rest of Unicode's control and format characters), and caps the length. `SMTP_POLICY` then
checks each header as it is written, and refuses one that would come out on more than one
logical line, whatever let it through.
"""

from __future__ import annotations

import re
import unicodedata
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import EmailMessage
from email.policy import EmailPolicy

from monitor.errors import MonitorError

MAX_HEADER_CHARS = 200  # a subject longer than this is cut (mail clients show far less)
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[bBqQ]\?.*?\?=")
_NEVER_IN_HEADERS = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # control, format, separators
_DECODE_ROUNDS = 5  # an encoded word inside an encoded word inside ... stops here


class HeaderInjection(MonitorError, ValueError):
    """A header would have been written with a line break in it."""


def header_text(text: str, limit: int | None = MAX_HEADER_CHARS) -> str:
    """Text safe for a header: encoded words decoded, one line, no control characters, at
    most `limit` characters (None: no cap)."""
    for _ in range(_DECODE_ROUNDS):
        cleaned = _one_line(_decoded(text))
        if cleaned == text:
            break
        text = cleaned
    else:
        text = _one_line(text)
    # What still looks like an encoded word (nesting deeper than the rounds above) must not
    # be decoded by the email package behind our back: break its opening.
    text = _ENCODED_WORD.sub(lambda m: "= ?" + m.group(0)[2:], text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _decoded(text: str) -> str:
    if "=?" not in text:
        return text
    try:
        parts = decode_header(text)
    except (HeaderParseError, ValueError):
        return text
    pieces = []
    for value, charset in parts:
        if isinstance(value, bytes):
            try:
                value = value.decode(charset or "raw-unicode-escape", errors="replace")
            except LookupError:  # an unknown charset: keep the bytes readable
                value = value.decode("latin-1")
        pieces.append(value)
    return "".join(pieces)


def _one_line(text: str) -> str:
    kept = (" " if unicodedata.category(ch) in _NEVER_IN_HEADERS else ch for ch in text)
    return " ".join("".join(kept).split())


class _StrictPolicy(EmailPolicy):
    """EmailPolicy that refuses to write a header whose folded form holds a line break
    anywhere but between its folded lines (what newer Pythons call
    verify_generated_headers, done here for every version)."""

    def fold(self, name: str, value: str) -> str:
        return _verified(super().fold(name, value), self.linesep, name)

    def fold_binary(self, name: str, value: str) -> bytes:
        folded = super().fold_binary(name, value)
        _verified(folded.decode("ascii", "surrogateescape"), self.linesep, name)
        return folded


def _verified(folded: str, linesep: str, name: str) -> str:
    lines = folded.removesuffix(linesep).split(linesep)
    broken = any("\r" in line or "\n" in line for line in lines)
    if broken or any(line[:1] not in {" ", "\t"} for line in lines[1:]):
        raise HeaderInjection(f"refusing to write the {name} header: it holds a line break")
    return folded


SMTP_POLICY = _StrictPolicy(linesep="\r\n")  # CRLF line ends, as SMTP wants
POLICY = _StrictPolicy()


def serialise(message: EmailMessage) -> bytes:
    """The message as it goes on the wire; HeaderInjection if a header is broken."""
    return message.as_bytes(policy=SMTP_POLICY)
