"""`/accounts/{account_id}/devices/physical-devices` and the legacy v1 `/devices` endpoints.

Reads accept a Zero Trust Read or Write credential; every write needs Zero Trust Write.
Query parameters and bodies are validated before the store is asked anything
(domain/devices.py); then the credential is checked (`SqlStore.access`), then the
device store is called once.

The v1 endpoints are deprecated at Cloudflare: every answer they give, success or
error, carries a `Deprecation` header, and on an account in multi-user mode they refuse
to work, as Cloudflare documents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from warp_registry.clock import now_us
from warp_registry.domain.devices import (
    device_to_api,
    legacy_detail_to_api,
    legacy_device_to_api,
    legacy_result_info,
    paginate_devices,
    parse_device_include,
    parse_device_list_query,
    parse_legacy_ids,
    parse_legacy_page,
    parse_tags_patch,
)
from warp_registry.domain.override_codes import override_codes
from warp_registry.errors import ApiError, DeviceNotFound, LegacyEndpointUnsupported
from warp_registry.http.auth import authorised_account, require
from warp_registry.http.context import AppContext
from warp_registry.http.handlers.registrations import BatchWrite
from warp_registry.http.request import Request, Response, ok
from warp_registry.http.routing import Handler
from warp_registry.store.sql_store import Probe

# A store write on one device of the account: (account id, device id) -> found.
DeviceWrite = Callable[[str, str], Awaitable[bool]]

# RFC 9745 `Deprecation` (a structured date: the end of life Cloudflare announced,
# 2025-11-11T00:00:00Z) and an RFC 8288 link to Cloudflare's deprecation notice.
DEPRECATION_HEADERS: dict[str, str] = {
    "deprecation": "@1762819200",
    "link": "<https://developers.cloudflare.com/fundamentals/api/reference/deprecations/>; "
    'rel="deprecation"',
}


class PhysicalDeviceHandlers:
    def __init__(self, context: AppContext) -> None:
        self.context = context

    async def _account(self, request: Request, *, write: bool) -> str:
        """The account of the path, once the request's credential may use it."""
        _, account_id = await authorised_account(self.context.store, request, write=write)
        return account_id

    async def list(self, request: Request) -> Response:
        """A page of devices, filtered and sorted, with a keyset cursor."""
        query = parse_device_list_query(request.query)
        account_id = await self._account(request, write=False)

        rows = await self.context.store.devices.list_devices(account_id, query)

        page = paginate_devices(query, rows)
        items = [device_to_api(device, query.include_policy) for device in page.items]
        return ok(items, page.result_info())

    async def get(self, request: Request) -> Response:
        """One device; `include=last_seen_registration.policy` embeds that profile."""
        include_policy = parse_device_include(request.query_one("include"))
        account_id = await self._account(request, write=False)

        device = await self.context.store.devices.get_device(
            account_id, request.path_params["device_id"]
        )

        if device is None:
            raise DeviceNotFound()
        return ok(device_to_api(device, include_policy))

    async def patch(self, request: Request) -> Response:
        """Replace the device's tags (`{"tags": {...}}`) and return the device."""
        tags = parse_tags_patch(request.body)
        account_id = await self._account(request, write=True)

        device = await self.context.store.devices.replace_tags(
            account_id, request.path_params["device_id"], tags
        )

        if device is None:
            raise DeviceNotFound()
        return ok(device_to_api(device, False))

    async def delete(self, request: Request) -> Response:
        """Delete the device and all of its registrations."""
        return await self._device_write(request, self.context.store.devices.delete_device)

    async def revoke(self, request: Request) -> Response:
        """Revoke every active registration of the device."""
        return await self._device_write(request, self.context.store.devices.revoke_device)

    async def _device_write(self, request: Request, write: DeviceWrite) -> Response:
        """Run a write on the path's device; 404 when the account has no such device."""
        account_id = await self._account(request, write=True)

        found = await write(account_id, request.path_params["device_id"])

        if not found:
            raise DeviceNotFound()
        return ok(None)


def deprecated(handler: Handler) -> Handler:
    """Add the deprecation headers to whatever the handler answers, errors included."""

    async def wrapped(request: Request) -> Response:
        try:
            response = await handler(request)
        except ApiError as exc:
            exc.headers.update(DEPRECATION_HEADERS)
            raise
        response.headers.extend((k.encode(), v.encode()) for k, v in DEPRECATION_HEADERS.items())
        return response

    return wrapped


class LegacyDeviceHandlers:
    """The v1 `/devices` endpoints: a registration id is what v1 calls a device id."""

    def __init__(self, context: AppContext) -> None:
        self.context = context

    async def _account(self, request: Request, *, write: bool) -> tuple[Probe, str]:
        """The credential and the account, once the credential may use the account and
        the account is not in multi-user mode."""
        probe, account_id = await authorised_account(self.context.store, request, write=write)
        if await self.context.store.devices.multi_user(account_id):
            raise LegacyEndpointUnsupported()
        return probe, account_id

    async def list(self, request: Request) -> Response:
        """One page (`page`, `per_page`) of registrations in the v1 shape."""
        page, per_page = parse_legacy_page(request.query)
        _, account_id = await self._account(request, write=False)

        items, total = await self.context.store.devices.legacy_page(account_id, page, per_page)

        info = legacy_result_info(page, per_page, len(items), total)
        return ok([legacy_device_to_api(item) for item in items], info)

    async def get(self, request: Request) -> Response:
        _, account_id = await self._account(request, write=False)

        device = await self.context.store.devices.legacy_device(
            account_id, request.path_params["device_id"]
        )

        if device is None:
            raise DeviceNotFound()
        return ok(legacy_detail_to_api(device))

    async def override_codes(self, request: Request) -> Response:
        """The registration's admin override codes (as the registrations endpoint gives)."""
        probe, account_id = await self._account(request, write=False)

        access, secret = await self.context.store.registration_override_secret(
            probe, account_id, request.path_params["device_id"]
        )

        require(probe, access, write=False)
        if secret is None:
            raise DeviceNotFound()
        return ok(override_codes(secret, now_us()))

    async def revoke(self, request: Request) -> Response:
        """Revoke the registrations a JSON array body names; unknown ids are ignored."""
        return await self._batch(request, self.context.store.revoke_registrations)

    async def unrevoke(self, request: Request) -> Response:
        """Unrevoke the registrations a JSON array body names; unknown ids are ignored."""
        return await self._batch(request, self.context.store.unrevoke_registrations)

    async def _batch(self, request: Request, write_batch: BatchWrite) -> Response:
        """Run one batch write on the registrations a JSON array body names."""
        registration_ids = parse_legacy_ids(request.body)
        probe, account_id = await self._account(request, write=True)

        access, _ = await write_batch(probe, account_id, registration_ids)

        require(probe, access, write=True)
        return ok(None)
