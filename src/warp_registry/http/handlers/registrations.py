"""`/accounts/{account_id}/devices/registrations`: WARP registrations."""

from __future__ import annotations

from warp_registry.domain.models import registration_to_api
from warp_registry.domain.queries import parse_include
from warp_registry.http.auth import read_credentials, require
from warp_registry.http.context import AppContext
from warp_registry.errors import RegistrationNotFound
from warp_registry.http.request import Request, Response, ok

REGISTRATION_INCLUDES = frozenset({"policy"})


class RegistrationHandlers:
    def __init__(self, context: AppContext) -> None:
        self.context = context

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
