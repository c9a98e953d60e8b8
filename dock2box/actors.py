"""Who is acting: the name every service writes into the history it records.

An interface says who acts once, where the request or command starts — the middleware for the admin and the APIs
(the signed-in or token user, read when the service runs, so DRF's token authentication is seen), `acting_as()` for the
boot path, the installer's callbacks and management commands — and the services read it with `actor_current()`.
"""

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

_actor: ContextVar[Callable[[], str] | None] = ContextVar("dock2box_actor", default=None)


def actor_current() -> str:
    """The name of who is acting now ("system" outside any request or command that said so)."""
    source = _actor.get()
    return source() if source is not None else "system"


@contextlib.contextmanager
def acting_as(name: str) -> Iterator[None]:
    """Record changes made inside the block as made by `name`."""
    token = _actor.set(lambda: name)
    try:
        yield
    finally:
        _actor.reset(token)


def _request_actor(request: HttpRequest) -> Callable[[], str]:
    def name() -> str:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return str(user.get_username())
        return f"anonymous ({request.META.get('REMOTE_ADDR', '-')})"

    return name


class ActorMiddleware:
    """A request acts as its user (whoever authenticated it by the time a service runs)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _actor.set(_request_actor(request))
        try:
            return self.get_response(request)
        finally:
            _actor.reset(token)
