"""The address policy: no request the service makes (feeds, pages, articles, robots.txt,
discovery, each redirect hop) reaches loopback, private, link-local or other non-public
addresses unless `[fetch] allow_private` names them. Two loopback servers: the farm, allowed
on its own port, and a second one playing an admin panel that must never be asked anything."""

from __future__ import annotations

import ipaddress
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FeedServer, Response, farm_limits, make_rss, write_config
from test_end_to_end import monitor

from monitor.config import load_settings
from monitor.errors import ConfigError, FetchError
from monitor.fetch import Request, fetch_all
from monitor.fulltext import fetch_articles
from monitor.netpolicy import AddressPolicy, AddressRefused, parse_allowed, refusal_reason


@pytest.fixture
def admin() -> Iterator[FeedServer]:
    """Another service on the same machine (another loopback port), not allowed."""
    server = FeedServer()
    server.routes["/admin"] = Response(200, b"all deleted", {"Content-Type": "text/html"})
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def admin_url(admin: FeedServer, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{admin.httpd.server_address[1]}/admin?action=delete-all"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fc00::1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("240.0.0.1", "a reserved address"),
        ("::ffff:127.0.0.1", "a loopback address"),  # IPv4-mapped
        ("2002:a9fe:a9fe::", "a link-local address"),  # 6to4 around 169.254.169.254
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
    ],
)
def test_which_addresses_are_refused(address: str, reason: str | None) -> None:
    assert refusal_reason(ipaddress.ip_address(address)) == reason


def test_allowed_networks_and_ports() -> None:
    policy = AddressPolicy(["10.1.2.0/24", "127.0.0.1:8080", "[::1]:9000", "fd00::/8"])
    assert policy.permits("10.1.2.77", 443) and not policy.permits("10.1.3.1", 443)
    assert policy.permits("127.0.0.1", 8080) and not policy.permits("127.0.0.1", 8081)
    assert policy.permits("::1", 9000) and not policy.permits("::1", 80)
    assert policy.permits("fd00::5", 80)
    assert policy.permits("93.184.216.34", 80)  # public addresses need no allowing
    with pytest.raises(AddressRefused) as refused:
        policy.check("169.254.169.254", 80)
    assert str(refused.value).startswith(
        "refused: 169.254.169.254 is a link-local address; allow it with fetch.allow_private"
    )


@pytest.mark.parametrize("entry", ["intranet.example", "10.1.2.0/33", "127.0.0.1:0", "[::1]x"])
def test_a_bad_allow_private_entry_is_a_config_error(tmp_path: Path, entry: str) -> None:
    with pytest.raises(ValueError):
        parse_allowed(entry)
    config = write_config(tmp_path, [], fetch={"allow_private": ["10.0.0.0/8", entry]})
    with pytest.raises(ConfigError, match=r"fetch\.allow_private\[1\]: .*" + re.escape(entry)):
        load_settings(config)


def test_the_allowed_farm_is_fetched_and_another_loopback_port_is_refused(
    feed_server: FeedServer, admin: FeedServer
) -> None:
    feed_server.routes["/feed.xml"] = Response(200, make_rss("wire", range(2)))
    requests = [Request("farm", feed_server.url("feed.xml")), Request("admin", admin_url(admin))]
    results = fetch_all(requests, farm_limits(feed_server))
    assert results["farm"].status == 200  # type: ignore[union-attr]
    refused = results["admin"]
    assert isinstance(refused, FetchError)
    assert str(refused).startswith(
        "refused: 127.0.0.1 is a loopback address; allow it with fetch.allow_private"
    )
    assert admin.requests == []


def test_a_redirect_to_another_loopback_port_is_refused(
    feed_server: FeedServer, admin: FeedServer
) -> None:
    feed_server.routes["/moved"] = Response(302, b"", {"Location": admin_url(admin)})
    feed_server.routes["/hop"] = Response(301, b"", {"Location": "/moved"})
    result = fetch_all([Request("r", feed_server.url("hop"))], farm_limits(feed_server))["r"]
    assert isinstance(result, FetchError) and "refused: 127.0.0.1 is a loopback" in str(result)
    assert feed_server.hits("/hop") == 1 and feed_server.hits("/moved") == 1  # hops on the farm
    assert admin.requests == []


def test_a_redirect_within_the_farm_is_followed(feed_server: FeedServer) -> None:
    feed_server.routes["/old"] = Response(308, b"", {"Location": "/new.xml"})
    feed_server.routes["/new.xml"] = Response(200, make_rss("wire", range(1)))
    result = fetch_all([Request("r", feed_server.url("old"))], farm_limits(feed_server))["r"]
    assert result.status == 200 and result.url == feed_server.url("new.xml")  # type: ignore[union-attr]


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://x/"])
def test_a_redirect_off_http_is_refused(feed_server: FeedServer, target: str) -> None:
    feed_server.routes["/jump"] = Response(302, b"", {"Location": target})
    result = fetch_all([Request("r", feed_server.url("jump"))], farm_limits(feed_server))["r"]
    assert isinstance(result, FetchError) and "only http(s) URLs are fetched" in str(result)


def test_a_host_name_resolving_to_loopback_is_refused(
    feed_server: FeedServer, admin: FeedServer
) -> None:
    """`localhost` is no IP address in the URL: only the check on the resolved address,
    the one connected to, can stop it."""
    by_name = admin_url(admin, host="localhost")
    result = fetch_all([Request("n", by_name)], farm_limits(feed_server))["n"]
    assert isinstance(result, FetchError)
    assert "refused: localhost (" in str(result) and "is a loopback address" in str(result)
    assert admin.requests == []
    # the same name on the allowed farm's port connects: it is the address that counts
    farm_by_name = feed_server.url("rss2.xml").replace("127.0.0.1", "localhost")
    assert fetch_all([Request("ok", farm_by_name)], farm_limits(feed_server))["ok"].status == 200  # type: ignore[union-attr]


def test_article_links_to_another_local_service_are_never_fetched(
    tmp_path: Path, feed_server: FeedServer, admin: FeedServer
) -> None:
    """The attack from the report: a feed on the farm whose item links point at an admin
    panel on another local port, full text on. The item is stored with its own text only,
    the refusal is logged for the item, and the admin panel hears nothing."""
    link = admin_url(admin).replace("&", "&amp;")
    feed_server.routes["/feed.xml"] = Response(200, (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>x</link>'
        f"<item><title>Kosovo plates row</title><link>{link}</link><guid>g1</guid>"
        "<description>Kosovo and Serbia argue over plates.</description></item>"
        "</channel></rss>"
    ).encode(), {"Content-Type": "application/rss+xml"})  # fmt: skip
    source = {"name": "Wire", "url": feed_server.url("feed.xml"), "fulltext": True}
    config = write_config(tmp_path, [source])
    ran = monitor(config, "once")
    assert ran.returncode == 0, ran.stderr
    assert f"article {admin_url(admin)}: refused: 127.0.0.1 is a loopback address" in ran.stderr
    assert admin.requests == []
    with sqlite3.connect(tmp_path / "monitor.db") as db:
        rows = db.execute("SELECT title, content FROM items").fetchall()
    assert rows == [("Kosovo plates row", "")]


def test_a_refused_source_shows_its_reason(
    tmp_path: Path, feed_server: FeedServer, admin: FeedServer
) -> None:
    feed_server.routes["/feed.xml"] = Response(200, make_rss("wire", range(1)))
    config = write_config(
        tmp_path,
        [{"name": "Farm", "url": feed_server.url("feed.xml")},
         {"name": "Panel", "url": admin_url(admin)}],
        fetch={"allow_private": [feed_server.address]},
    )  # fmt: skip
    ran = monitor(config, "once")
    assert "✗ Panel: refused: 127.0.0.1 is a loopback address" in ran.stdout
    assert "✓ Farm: HTTP 200" in ran.stdout
    listed = monitor(config, "sources")
    assert "refused: 127.0.0.1 is a loopback address" in listed.stdout
    assert admin.requests == []


def test_robots_txt_redirected_to_loopback_is_refused(
    feed_server: FeedServer, admin: FeedServer
) -> None:
    feed_server.routes["/robots.txt"] = Response(302, b"", {"Location": admin_url(admin)})
    feed_server.routes["/list.html"] = Response(200, b"<html></html>")
    request = Request("page", feed_server.url("list.html"), robots=True)
    result = fetch_all([request], farm_limits(feed_server))["page"]
    assert isinstance(result, FetchError) and str(result).startswith("robots.txt: refused")
    assert admin.requests == [] and feed_server.hits("/list.html") == 0


def test_article_fetches_go_through_the_policy(feed_server: FeedServer, admin: FeedServer):
    results = fetch_articles({"a": admin_url(admin)}, farm_limits(feed_server))
    assert "refused: 127.0.0.1 is a loopback address" in str(results["a"])
    assert admin.requests == []


def test_discover_refuses_a_loopback_address_unless_allowed(
    tmp_path: Path, admin: FeedServer
) -> None:
    admin.routes["/"] = Response(200, make_rss("x", range(1)), {"Content-Type": "text/xml"})
    url = f"http://127.0.0.1:{admin.httpd.server_address[1]}/"
    config = tmp_path / "monitor.toml"
    config.write_text("[fetch]\nhost_delay = 0\n", encoding="utf-8")
    refused = monitor(config, "sources", "discover", url)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "refused: 127.0.0.1 is a loopback address; allow it with fetch.allow_private" in (
        refused.stderr
    )
    assert admin.requests == []
    config.write_text(f'[fetch]\nhost_delay = 0\nallow_private = ["{admin.address}"]\n')
    allowed = monitor(config, "sources", "discover", url)
    assert allowed.returncode == 0, allowed.stderr
    assert "Feed:  " + url in allowed.stdout
