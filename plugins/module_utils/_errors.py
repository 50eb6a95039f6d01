# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type for problems a user can fix.

Modules catch it once in ``main()`` and call ``fail_json(**err.fail_kwargs())``; the lookup plugin turns it
into ``AnsibleLookupError(str(err))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class DarklaunchError(Exception):
    """Something the user can fix; ``msg`` says what happened and what to do.

    ``field`` names the option at fault (``mirror_percent``, ``namespace``, ...) so callers can point at it;
    ``details`` carries JSON-serialisable context that ends up in the failed task's result.
    """

    def __init__(self, msg: str, *, field: str | None = None, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.field = field
        self.details: dict[str, Any] = dict(details) if details else {}

    def __str__(self) -> str:
        return self.msg

    def fail_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AnsibleModule.fail_json``: ``msg``, ``field`` (when set) and the details."""
        kwargs: dict[str, Any] = {key: value for key, value in self.details.items() if key != "msg"}
        if self.field is not None:
            kwargs["field"] = self.field
        kwargs["msg"] = self.msg
        return kwargs


class ConflictError(DarklaunchError):
    """A write lost a race: the object changed after it was read (HTTP 409, or 422 from a failed ``test`` op).

    Callers re-read and re-plan; the message names the object so a final failure says who to look at.
    """


class ApiUnavailableError(DarklaunchError):
    """The Kubernetes API did not answer: refused, reset, or no answer within the request timeout.

    ``request_sent`` tells whether the request may have reached the API (a write may then have been
    applied although no answer came back); a refused connection sent nothing.
    """

    def __init__(
        self,
        msg: str,
        *,
        request_sent: bool,
        field: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(msg, field=field, details=details)
        self.request_sent = request_sent
