"""Mail built from hostile feed text: encoded words that hide line breaks, Unicode line
separators, control characters. The message read back (from a real SMTP server, or parsed
from the bytes that would be sent) has exactly the headers the code set, one line each, and
its HTML part holds no script, event handler or javascript: link."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mailtools import RULES, T0, Tags, add_story, parts, settings_for

from monitor.alerts import send_alerts
from monitor.digest import collect, render
from monitor.mailheaders import HeaderInjection, header_text, serialise
from monitor.models import Evidence, StoredHit
from monitor.settings import DigestSettings
from monitor.store import Store

ALERTS = """
[[digests]]
name = "daily"
to = ["analyst@example.org"]

[alerts]
to = ["desk@example.org"]
batch = "0s"
"""
HEADERS = {"Subject", "From", "To", "Date", "Message-ID", "Auto-Submitted", "List-Id",
           "List-Unsubscribe", "MIME-Version", "Content-Type"}  # fmt: skip
INJECTIONS = [
    "=?utf-8?q?=0D=0ABcc:_victim@example.org?=",
    "=?utf-8?q?=0D=0AReply-To:_attacker@example.org?=",
    "=?utf-8?q?=0D=0A=0D=0APlease_wire_the_money_to_IBAN_XX00?=",
    "=?utf-8?b?" + base64.b64encode(b"\r\nBcc: victim@example.org").decode() + "?=",
    "=?iso-8859-1?q?=0ABcc:_victim@example.org?=",
    "\r\nBcc: victim@example.org",
    "\u2028Bcc: victim@example.org\u2029",
    "\x85Bcc: victim@example.org",
]


def read(message: EmailMessage) -> EmailMessage:
    return message_from_bytes(serialise(message), policy=policy.default)


@pytest.mark.parametrize("injection", INJECTIONS)
def test_an_alert_with_an_injected_title_reaches_only_its_recipient(
    tmp_path: Path, smtp_server, injection: str
) -> None:
    settings = settings_for(tmp_path, smtp_server, ALERTS)
    store = Store(settings.database)
    add_story(store, f"KFOR patrols north Mitrovica {injection} today", "KFOR troops reinforce "
              "patrols near Kosovo.", now=T0)  # fmt: skip
    sent = send_alerts(settings, store, RULES, now=T0, wait=False)
    assert sent.built is not None
    [(_, recipients, _)] = smtp_server.inbox.envelopes
    assert recipients == ["desk@example.org"]
    [message] = smtp_server.inbox.messages()
    assert set(message.keys()) == HEADERS
    assert len(message.get_all("Subject")) == 1
    subject = str(message["Subject"]).strip()  # the package may fold it onto a second line
    assert subject.startswith("Urgent: KFOR patrols north Mitrovica")
    assert "\n" not in subject and "\r" not in subject and "=?" not in subject
    text, _ = parts(message)
    assert text.lstrip().startswith("Urgent")  # the body starts where the template starts
    assert not text.lstrip().startswith("Please wire")


def test_header_text_decodes_then_strips_then_caps() -> None:
    assert header_text("Talks =?utf-8?q?=0D=0ABcc:_x@example.org?= resume") == (
        "Talks Bcc: x@example.org resume"
    )
    assert header_text("Vučić\u2028meets\u2029Kurti\x85in\x00Brussels\u202e") == (
        "Vučić meets Kurti in Brussels"
    )
    assert len(header_text("word " * 200)) == 200
    nested = "=?utf-8?b?" + base64.b64encode(b"=?utf-8?q?=0D=0AX:_y?=").decode() + "?="
    assert header_text(nested) == "X: y"


def test_a_header_with_a_line_break_is_never_written() -> None:
    message = EmailMessage()
    message["Subject"] = "Urgent =?utf-8?q?=0D=0ABcc:_victim@example.org?="  # unsanitised
    message.set_content("body")
    with pytest.raises(HeaderInjection, match="Subject header"):
        serialise(message)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    db = Store(tmp_path_factory.mktemp("db") / "monitor.db")
    yield db
    db.close()


def row(title: str, summary: str, url: str) -> StoredHit:
    """A hit as the store hands it to the digest, from hostile text."""
    evidence = Evidence("KFOR", "summary", 0, 4, summary[:4], "kfor")
    return StoredHit(hit_id=1, rule="balkans/kfor", priority="urgent", actors=("kfor",),
                     evidence=(evidence,), created_at=datetime(2022, 11, 24, 8, tzinfo=UTC),
                     item_id="i1", title=title, summary=summary, content="", url=url,
                     published="2022-11-24T07:00:00Z", source="Wire",
                     source_links=(("Wire", url),))  # fmt: skip


HOSTILE_TEXT = st.lists(
    st.sampled_from([
        *INJECTIONS, "<script>alert(1)</script>", '<img src=x onerror="alert(1)">',
        "javascript:alert(1)", '"><a href="javascript:alert(1)">x</a>', "\x00", "\t", "\u202e",
        "=?", "?=", "Kosovo", "Вучић", " ", "\r", "\n", "&amp;", "<b onclick=x>",
    ]) | st.text(max_size=20),
    max_size=12,
).map("".join)  # fmt: skip
URLS = st.sampled_from(["https://news.example/a", "javascript:alert(1)", "data:text/html,x",
                        "http://x.example/\r\nBcc: v@e.org", "", "vbscript:x"])  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    title=HOSTILE_TEXT, summary=HOSTILE_TEXT, url=URLS, kind=st.sampled_from(["alert", "digest"])
)
def test_any_title_and_summary_give_clean_multipart_mail(
    store: Store, title: str, summary: str, url: str, kind: str
) -> None:
    config = DigestSettings(name="alert:urgent" if kind == "alert" else "daily",
                            to=("desk@example.org",), title="Urgent")  # fmt: skip
    now = datetime(2022, 11, 24, 9, tzinfo=UTC)
    digest = collect(store, config, RULES, now, hits=[row(title, "KFOR " + summary, url)],
                     kind=kind)  # fmt: skip
    message = read(
        render(digest, "News Monitor <monitor@example.org>", ["desk@example.org"]).message
    )
    assert set(message.keys()) == HEADERS
    for name in HEADERS:
        assert len(message.get_all(name)) == 1
        assert "\n" not in str(message[name]) and "\r" not in str(message[name])
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    html = message.get_body(("html",)).get_content()
    tags = Tags(html)
    assert "script" not in tags.names()
    for _, attributes in tags.tags:
        assert not any(name.startswith("on") for name in attributes)
        for name in ("href", "src", "action"):
            value = (attributes.get(name) or "").strip().lower()
            assert not value or value.startswith(("http://", "https://", "#", "mailto:"))
