"""What stands between another site and the dashboard's actions.

Every action is a ``POST`` that must pass three checks, each enough to stop a forged
request from a browser on its own:

* **A CSRF token.** The dashboard sets a random cookie (``HttpOnly``,
  ``SameSite=Strict``) and puts ``HMAC(key, cookie)`` in every form it draws; a ``POST``
  whose form field does not match its cookie is refused. Another site can neither read
  the cookie nor compute the mac, and a cookie planted from a sibling domain is useless
  without the key.
* **Origin.** A browser names the page that sent a ``POST``; when it does, that origin's
  host must be the one the request was sent to (``null``, which browsers send under the
  ``no-referrer`` policy, passes only with ``Sec-Fetch-Site: same-origin``).
* **Sec-Fetch-Site.** A browser that sends it says whether the request came from this
  origin; anything but ``same-origin`` is refused.

The key is derived from the app's ``secret`` setting when there is one (so every web
process behind a load balancer accepts the same tokens), else made at random when the
web application is built (tokens then last as long as the process).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

#: The cookie holding the random half of the token.
COOKIE = "offload_csrf"
#: The form field holding the mac.
FIELD = "csrf_token"
_PURPOSE = b"offload.dashboard-csrf.v1\x00"


class CSRF:
    """Makes and checks the dashboard's CSRF tokens."""

    def __init__(self, secret: str | None) -> None:
        seed = secret.encode() if secret else secrets.token_bytes(32)
        self._key = hmac.new(seed, _PURPOSE, hashlib.sha256).digest()

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(32)

    @staticmethod
    def cookie_of(request: Request) -> str | None:
        """The request's cookie value, if it is one this module could have made."""
        value = request.cookies.get(COOKIE)
        if value is None or not 20 <= len(value) <= 100:
            return None
        if not all(c.isalnum() or c in "-_" for c in value):
            return None
        return value

    def token(self, cookie: str) -> str:
        """The form field value that goes with ``cookie``."""
        return hmac.new(self._key, cookie.encode(), hashlib.sha256).hexdigest()

    def refusal(self, request: Request, form_token: str | None) -> str | None:
        """Why this ``POST`` is refused (None: it passes every check)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site != "same-origin":
            return f"cross-site request refused (Sec-Fetch-Site: {site[:40]})"
        origin = request.headers.get("origin")
        # Under "Referrer-Policy: no-referrer" (every page here has it, so no status URL
        # leaks) a browser sends "Origin: null" with a form of this very origin; it then
        # also says "Sec-Fetch-Site: same-origin", which no page of another site can.
        opaque = origin == "null" and site == "same-origin"
        if (
            origin is not None
            and not opaque
            and not same_host(origin, request.headers.get("host", ""))
        ):
            return f"request from another origin refused ({origin[:100]})"
        cookie = self.cookie_of(request)
        if cookie is None or not form_token:
            return "missing CSRF token: reload the page and try again"
        if not hmac.compare_digest(self.token(cookie).encode(), form_token.encode()):
            return "bad CSRF token: reload the page and try again"
        return None


def same_host(origin: str, host: str) -> bool:
    """Whether the ``Origin`` header names the host (and port) the request was sent to.
    The scheme is not compared: behind a proxy that ends TLS, the browser says
    ``https`` while the request arrives over plain HTTP."""
    if origin == "null" or not host:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
        return False
    default = {"http": ":80", "https": ":443"}[parts.scheme]
    given = parts.netloc.lower().removesuffix(default)
    expected = host.strip().lower().removesuffix(default)
    return hmac.compare_digest(given.encode(), expected.encode())
