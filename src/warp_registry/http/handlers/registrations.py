"""`/accounts/{account_id}/devices/registrations`: WARP registrations.

Reads accept a Zero Trust Read or Write credential; every write needs Zero Trust Write.
Query parameters are validated before the store is asked anything (domain/listing.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from warp_registry.clock import now_us
from warp_registry.domain.listing import paginate, parse_batch_ids, parse_list_query
from warp_registry.domain.models import Access, registration_to_api
from warp_registry.domain.override_codes import override_codes
from warp_registry.domain.queries import parse_include
from warp_registry.errors import RegistrationNotFound
from warp_registry.http.auth import read_credentials, require
from warp_registry.http.context import AppContext
from warp_registry.http.request import Request, Response, ok
from warp_registry.store.sql_store import Probe

REGISTRATION_INCLUDES = frozenset({"policy"})

# A store write over a batch of the account's registrations (delete, revoke, unrevoke):
# (credential, account id, registration ids) -> (access, rows changed).
BatchWrite = Callable[[Probe, str, Sequence[str]], Awaitable[tuple[Access, int]]]


class RegistrationHandlers:
    def __init__(self, context: AppContext) -> None:
        self.context = context

    async def list(self, request: Request) -> Response:
        """A page of registrations, filtered and sorted, with a keyset cursor."""
        query = parse_list_query(request.query)
        probe = read_credentials(request.headers)

        access, rows = await self.context.store.list_registrations(
            probe, request.path_params["account_id"], query
        )

        require(probe, access, write=False)
        page = paginate(query, rows)
        items = [registration_to_api(reg, query.include_policy) for reg in page.items]
        return ok(items, page.result_info())

    async def get(self, request: Request) -> Response:
        """One registration. The credential check and the row come from one store query."""
        include = parse_include(request.query_one("include"), REGISTRATION_INCLUDES)
        probe = read_credentials(request.headers)
        params = request.path_params

        access, registration = await self.context.store.get_registration(
            probe, params["account_id"], params["registration_id"]
        )

        require(probe, access, write=False)
        if registration is None:
            raise RegistrationNotFound()
        return ok(registration_to_api(registration, "policy" in include))

    async def delete(self, request: Request) -> Response:
        """Delete one registration; 404 when the account has no such registration."""
        probe = read_credentials(request.headers)
        params = request.path_params

        access, deleted = await self.context.store.delete_registrations(
            probe, params["account_id"], [params["registration_id"]]
        )

        require(probe, access, write=True)
        if deleted == 0:
            raise RegistrationNotFound()
        return ok(None)

    async def bulk_delete(self, request: Request) -> Response:
        """Delete up to 200 registrations (`?id=a&id=b`); unknown ids are ignored."""
        return await self._batch(request, self.context.store.delete_registrations)

    async def revoke(self, request: Request) -> Response:
        """Revoke up to 200 registrations (`?id=a&id=b`, empty body)."""
        return await self._batch(request, self.context.store.revoke_registrations)

    async def unrevoke(self, request: Request) -> Response:
        """Unrevoke up to 200 registrations (`?id=a&id=b`, empty body)."""
        return await self._batch(request, self.context.store.unrevoke_registrations)

    async def _batch(self, request: Request, write_batch: BatchWrite) -> Response:
        """Run one batch write on the ids of `?id=a&id=b`; unknown ids are ignored."""
        registration_ids = parse_batch_ids(request.query)
        probe = read_credentials(request.headers)

        access, _ = await write_batch(probe, request.path_params["account_id"], registration_ids)

        require(probe, access, write=True)
        return ok(None)

    async def override_codes(self, request: Request) -> Response:
        """The registration's admin override codes for the current time window."""
        probe = read_credentials(request.headers)
        params = request.path_params

        access, secret = await self.context.store.registration_override_secret(
            probe, params["account_id"], params["registration_id"]
        )

        require(probe, access, write=False)
        if secret is None:
            raise RegistrationNotFound()
        return ok(override_codes(secret, now_us()))
