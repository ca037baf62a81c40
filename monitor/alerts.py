"""Urgent alerts: hits of urgent rules mailed soon after they arrive, without waiting for the
next digest.

The first urgent hit opens a batch window (`[alerts] batch`); everything urgent that arrives
meanwhile joins it, and one message goes out when the window closes. At most `max_per_hour`
alerts go out in any hour: once the cap is reached, hits keep piling up and leave together as
one message when the hour allows, so a flood becomes one message rather than a hundred.

Alerts claim their hits under their own name ("alert:<name>") through the same outbox as the
digests: recorded with the hits in one transaction before sending, so each hit is alerted at
most once whatever crashes, and still appears in every digest that covers it. Alerts are per
story: once a story was alerted, later hits on it (other outlets picking it up) are left to
the digests."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.clock import utcnow
from monitor.deliver import deliver_pending, deliverer_for
from monitor.digest import (
    PRIORITY_ORDER,
    BuiltMessage,
    collect,
    operator_of,
    record,
    render,
    selects,
    sender_of,
)
from monitor.models import StoredHit
from monitor.rules import RuleSet
from monitor.settings import AlertSettings, DigestSettings, Settings
from monitor.signalalerts import queue_signal_alert
from monitor.store import Store

log = logging.getLogger(__name__)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class AlertCheck:
    """The outcome of one look at the urgent hits: a message to send, or why not yet."""

    built: BuiltMessage | None
    reason: str
    next_check: datetime | None = None  # when waiting: the earliest it could go out


def as_digest(alerts: AlertSettings) -> DigestSettings:
    """Alerts are rendered and claimed like a digest of their own name."""
    return DigestSettings(
        name=alerts.claim,
        timezone=alerts.timezone,
        to=alerts.to,
        rules=alerts.rules,
        tags=alerts.tags,
        title=alerts.title,
        max_stories=alerts.max_stories,
    )


def unalerted(store: Store, claim: str, hits: list[StoredHit]) -> list[StoredHit]:
    """Hits of stories not alerted yet under `claim`: a story goes out once, and more
    outlets picking it up later go into the next digest instead."""
    done = store.alerted_stories(claim, {h.story_id for h in hits}) if hits else set()
    return [h for h in hits if h.story_id not in done]


def check_alert(
    settings: Settings,
    store: Store,
    ruleset: RuleSet | None,
    now: datetime | None = None,
    wait: bool = True,
) -> AlertCheck:
    """Build the alert that is due now, if any; records and sends nothing. With `wait`
    False the batch window is skipped (the hourly cap still holds)."""
    config = settings.alerts
    if config is None:
        return AlertCheck(None, "no [alerts] configured")
    now = now or utcnow()
    as_dig = as_digest(config)
    floor = PRIORITY_ORDER[config.priority]
    hits = [
        h
        for h in store.undelivered_hits(config.claim, since=now - timedelta(seconds=config.max_age))
        if PRIORITY_ORDER.get(h.priority, 9) <= floor and selects(as_dig, h.rule, ruleset)
    ]
    hits = unalerted(store, config.claim, hits)
    if not hits:
        return AlertCheck(None, f"no new {config.priority} hits")
    ready = min(h.created_at for h in hits) + timedelta(seconds=config.batch)
    if wait and now < ready:
        return AlertCheck(None, f"{len(hits)} hits waiting for the batch window", ready)
    recent = [t for t in store.digest_times(config.claim, now - HOUR) if t > now - HOUR]
    if len(recent) >= config.max_per_hour:
        reopens = recent[-config.max_per_hour] + HOUR
        reason = f"{len(hits)} hits held back: {config.max_per_hour} alerts in the last hour"
        return AlertCheck(None, reason, reopens)
    digest = collect(store, as_dig, ruleset, now, hits=hits, kind="alert", ui=settings.ui)
    built = render(digest, sender_of(settings), list(config.to), operator_of(settings))
    return AlertCheck(built, "ready")


def queue_alert(
    settings: Settings,
    store: Store,
    ruleset: RuleSet | None,
    now: datetime | None = None,
    wait: bool = True,
) -> AlertCheck:
    """Record the due alert (claiming its hits) in the outbox; the next delivery sends it."""
    check = check_alert(settings, store, ruleset, now, wait)
    if check.built is not None:
        digest_id = record(store, check.built)
        if digest_id is None:
            return AlertCheck(None, "claimed by a concurrent run")
        log.info(
            "alert #%d: %d urgent hits recorded for delivery",
            digest_id,
            len(check.built.digest.hit_ids),
        )
    queue_signal_alert(settings, store, ruleset, now)  # surges, breaking stories (signals.py)
    return check


def send_alerts(
    settings: Settings,
    store: Store,
    ruleset: RuleSet | None,
    now: datetime | None = None,
    wait: bool = True,
) -> AlertCheck:
    """Queue the due alert and the channels' pushes, then deliver whatever the outbox holds."""
    from monitor.notify import queue_pushes  # notify builds on this module

    check = queue_alert(settings, store, ruleset, now, wait)
    queue_pushes(settings, store, ruleset, now)
    deliver_pending(store, deliverer_for(settings), now)
    return check
