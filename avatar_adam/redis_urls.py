"""Derive per-purpose Redis URLs (logical databases) from the one REDIS_URL."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse


def redis_url_with_db(url: str, db: int) -> str:
    """Return `url` pointing at logical database `db` (redis://, rediss:// or unix://)."""
    parts = urlparse(url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme == "unix":
        query["db"] = str(db)
        return f"unix://{parts.path}?{urlencode(query)}"
    return urlunparse(parts._replace(path=f"/{db}"))


def celery_broker_url(url: str) -> str:
    """Kombu spells a unix-socket Redis `redis+socket://`; TCP URLs pass through."""
    parts = urlparse(url)
    if parts.scheme != "unix":
        return url
    query = dict(parse_qsl(parts.query))
    db = query.pop("db", "0")
    query["virtual_host"] = db
    return f"redis+socket://{parts.path}?{urlencode(query)}"
