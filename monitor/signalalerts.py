"""Urgent alerts for surges and breaking stories of urgent rules.

They go out under the `[alerts]` name, through the same outbox and under the same hourly cap
as the urgent hits (alerts.py): a signal is claimed with the message that carries it, in one
transaction, so it is alerted at most once whatever crashes; when the cap is reached the
signals wait and leave together once the hour allows."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from jinja2 import Environment, PackageLoader, select_autoescape

from monitor.clock import utcnow
from monitor.mailheaders import POLICY, header_text, serialise
from monitor.models import Signal
from monitor.rules import RuleSet
from monitor.settings import Settings
from monitor.signals import actor_names, describe
from monitor.store import AlreadyClaimed, Store

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
_env = Environment(
    loader=PackageLoader("monitor", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def urgent_signals(store: Store, settings: Settings, ruleset: RuleSet | None,
                   now: datetime) -> list[Signal]:  # fmt: skip
    """Surges and breaking stories not yet alerted whose rule (a rule surge) or whose
    story's rules (an actor surge, a breaking story) include an urgent one."""
    config = settings.alerts
    if config is None or ruleset is None or not settings.signals.alerts:
        return []
    urgent = {r.id for r in ruleset.rules if r.priority == "urgent"}
    since = now - timedelta(seconds=config.max_age)
    chosen = []
    for signal in store.signals(since, unclaimed=config.claim):
        if signal.kind not in ("surge", "breaking"):
            continue
        rules = {signal.rule} if signal.rule else store.story_rules(signal.story or "")
        if rules & urgent:
            chosen.append(signal)
    return chosen


def queue_signal_alert(settings: Settings, store: Store, ruleset: RuleSet | None,
                       now: datetime | None = None) -> int | None:  # fmt: skip
    """Record an alert of the urgent signals (claiming them) when the hourly cap allows;
    the outbox id, or None when there is nothing to send or the cap holds it back."""
    config = settings.alerts
    moment = now or utcnow()
    signals = urgent_signals(store, settings, ruleset, moment)
    if config is None or not signals:
        return None
    recent = [t for t in store.digest_times(config.claim, moment - HOUR) if t > moment - HOUR]
    if len(recent) >= config.max_per_hour:
        log.info("%d urgent signals held back: %d alerts in the last hour", len(signals),
                 config.max_per_hour)  # fmt: skip
        return None
    message, subject, lines = _message(settings, signals, ruleset, moment)
    try:
        digest_id = store.record_signal_message(
            config.claim, subject, message["Message-ID"], list(config.to),
            serialise(message), [s.id for s in signals], moment,
        )  # fmt: skip
    except AlreadyClaimed as exc:
        log.warning("%s; this copy is dropped", exc)
        return None
    log.info("alert #%d: %d urgent signals recorded for delivery", digest_id, len(lines))
    return digest_id


def _message(settings: Settings, signals: list[Signal], ruleset: RuleSet | None,
             now: datetime) -> tuple[EmailMessage, str, list[str]]:  # fmt: skip
    config = settings.alerts
    assert config is not None
    names = actor_names(ruleset)
    lines = [describe(s, names) for s in signals]
    subject = header_text(f"{config.title}: {lines[0]}", 120) if len(lines) == 1 else \
        header_text(f"{config.title} — {len(lines)} signals: {lines[0]}", 120)  # fmt: skip
    context = {"digest": {"changes": lines, "subject": subject}}
    sender = settings.smtp.sender if settings.smtp else "News Monitor <monitor@localhost>"
    message = EmailMessage(policy=POLICY)
    message["Subject"] = subject
    message["From"] = header_text(sender, limit=None)
    message["To"] = header_text(", ".join(config.to), limit=None) or "undisclosed-recipients:;"
    message["Date"] = format_datetime(now)
    domain = sender.rpartition("@")[2].strip("> ") or "news-monitor.local"
    message["Message-ID"] = make_msgid(idstring="signals", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    text = f"{subject}\n\n" + _env.get_template("what_changed.txt").render(**context)
    html = _env.get_template("what_changed.html").render(**context)
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(f"<html><body>{html}</body></html>", subtype="html",
                            cte="quoted-printable")  # fmt: skip
    return message, subject, lines
