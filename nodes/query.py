"""Query parameters merged into a URL that may already carry a query string.

httpx replaces a URL's query when a request is given ``params=`` (even an empty mapping), so
``https://api.example.com/search?q=x`` with ``params={}`` is sent as ``/search``. Every
transport that joins parameters to a URL that came from a user, a credential or a provider
(pagination links) builds the URL here and passes no ``params=``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

import httpx


def with_query(url: httpx.URL | str, params: Mapping[str, Any] | None) -> httpx.URL:
    """``url`` with ``params`` merged into its query string.

    The URL's own parameters keep their order and their exact encoding; a key that is also in
    ``params`` takes the value(s) from ``params`` (the URL's values of that key are dropped);
    a list value repeats the key. Values are encoded as httpx encodes ``params=``.
    """
    url = httpx.URL(url)
    if not params:
        return url
    kept = [part for part in url.query.split(b"&") if part and _key(part) not in params]
    added = str(httpx.QueryParams(dict(params))).encode("ascii")
    return url.copy_with(query=b"&".join([*kept, added]) if added else b"&".join(kept) or None)


def _key(part: bytes) -> str:
    """The decoded name of one ``name=value`` pair of a raw query string."""
    return unquote_plus(part.partition(b"=")[0].decode("ascii", "replace"))
