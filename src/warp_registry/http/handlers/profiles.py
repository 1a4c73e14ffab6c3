"""`/accounts/{account_id}/devices/policy[/{policy_id}]` and `/devices/policies`: device
settings profiles, and their `exclude`, `include` and `fallback_domains` lists.

Permissions are those of registrations: reads take a Zero Trust Read or Write credential,
writes need Write. The body is validated before the credential is looked at (the order
docs/errors.md gives); changes that depend on the stored profile (read-only fields,
precedence) are checked in the store's transaction. The shapes and rules are in
domain/profiles.py; docs/profiles.md describes them.
"""

from __future__ import annotations

from typing import Any

from warp_registry.domain.profiles import (
    CREATE,
    UPDATE,
    UPDATE_DEFAULT,
    Profile,
    ProfileChanges,
    changed_profile,
    list_of,
    page_result_info,
    parse_list_body,
    parse_list_query,
    parse_profile_body,
    profile_to_api,
    whole_list_result_info,
    with_list,
)
from warp_registry.errors import ProfileNotFound
from warp_registry.http.auth import authorised_account
from warp_registry.http.context import AppContext
from warp_registry.http.request import Request, Response, ok
from warp_registry.http.routing import Handler
from warp_registry.store.profiles import Change


class ProfileHandlers:
    def __init__(self, context: AppContext) -> None:
        self.context = context

    # --- the default profile ---

    async def get_default(self, request: Request) -> Response:
        account_id = await self._authorised(request, write=False)
        profile = await self.context.store.profiles.default_profile(account_id)
        if profile is None:
            raise ProfileNotFound()
        return ok(_shown(profile))

    async def edit_default(self, request: Request) -> Response:
        changes = parse_profile_body(request.body, UPDATE_DEFAULT)
        account_id = await self._authorised(request, write=True)
        profile = await self.context.store.profiles.change_default(account_id, _applying(changes))
        return ok(_shown(profile))

    # --- custom profiles ---

    async def create(self, request: Request) -> Response:
        changes = parse_profile_body(request.body, CREATE)
        account_id = await self._authorised(request, write=True)
        profile = await self.context.store.profiles.create(account_id, changes)
        return ok(_shown(profile))

    async def list(self, request: Request) -> Response:
        """Custom profiles of one type, by precedence (the default one is not listed)."""
        query = parse_list_query(request.query)
        account_id = await self._authorised(request, write=False)
        profiles, total = await self.context.store.profiles.list_profiles(account_id, query)
        return ok([_shown(p) for p in profiles], page_result_info(query, len(profiles), total))

    async def get(self, request: Request) -> Response:
        account_id = await self._authorised(request, write=False)
        profile = await self.context.store.profiles.custom_profile(
            account_id, request.path_params["policy_id"]
        )
        return ok(_shown(profile))

    async def edit(self, request: Request) -> Response:
        changes = parse_profile_body(request.body, UPDATE)
        account_id = await self._authorised(request, write=True)
        profile = await self.context.store.profiles.change_custom(
            account_id, request.path_params["policy_id"], _applying(changes)
        )
        return ok(_shown(profile))

    async def delete(self, request: Request) -> Response:
        """Delete a custom profile; the answer is the custom profiles that remain."""
        account_id = await self._authorised(request, write=True)
        remaining = await self.context.store.profiles.delete(
            account_id, request.path_params["policy_id"]
        )
        return ok([_shown(p) for p in remaining], whole_list_result_info(len(remaining)))

    # --- the lists: GET and PUT a whole list ---

    def list_reader(self, field: str, *, default: bool) -> Handler:
        """GET `.../exclude`, `.../include` or `.../fallback_domains`."""

        async def handler(request: Request) -> Response:
            account_id = await self._authorised(request, write=False)
            profiles = self.context.store.profiles
            if default:
                profile = await profiles.default_profile(account_id)
                if profile is None:
                    raise ProfileNotFound()
            else:
                profile = await profiles.custom_profile(
                    account_id, request.path_params["policy_id"]
                )
            return _whole_list(list_of(profile, field))

        return handler

    def list_writer(self, field: str, *, default: bool) -> Handler:
        """PUT a whole list; `exclude` or `include` also puts the profile in that mode."""

        async def handler(request: Request) -> Response:
            entries = parse_list_body(request.body, field)
            account_id = await self._authorised(request, write=True)
            profiles = self.context.store.profiles

            def change(profile: Profile, now: int) -> Profile:
                return with_list(profile, field, entries, now)

            if default:
                profile = await profiles.change_default(account_id, change)
            else:
                profile = await profiles.change_custom(
                    account_id, request.path_params["policy_id"], change
                )
            return _whole_list(list_of(profile, field))

        return handler

    async def _authorised(self, request: Request, *, write: bool) -> str:
        """The account id of the path, once the credential may read (or write) it."""
        _, account_id = await authorised_account(self.context.store, request, write=write)
        return account_id


def _applying(changes: ProfileChanges) -> Change:
    """The store-side step of a PATCH: the body applied to the profile as stored."""

    def change(profile: Profile, now: int) -> Profile:
        # The gateway's unique id is the account id (our choice, docs/profiles.md).
        return changed_profile(profile, changes, profile.account_id, now)

    return change


def _whole_list(entries: list[dict[str, Any]]) -> Response:
    return ok(entries, whole_list_result_info(len(entries)))


def _shown(profile: Profile) -> dict[str, Any]:
    return profile_to_api(profile, profile.account_id)
