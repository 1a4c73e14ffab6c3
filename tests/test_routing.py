"""The segment-tree router on its own: precedence, typed parameters and routing errors."""

from __future__ import annotations

import pytest

from warp_registry.errors import InvalidObjectIdentifier, MethodNotAllowed, NoRoute
from warp_registry.http.request import Request, Response
from warp_registry.http.routing import Handler, Router

ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
UUID = "11ffb86f-3f0c-4306-b4a2-e62f872b166a"


def _handler(name: str) -> Handler:
    async def handle(request: Request) -> Response:
        return Response(200, name.encode())

    return handle


def _router(*routes: tuple[str, str, str]) -> Router:
    router = Router()
    for method, template, name in routes:
        router.add(method, template, name, _handler(name))
    return router


DEVICES = _router(
    ("GET", "/a/{account_id:account}/devices", "list-devices"),
    ("GET", "/a/{account_id:account}/devices/{device_id:uuid}", "get-device"),
    ("DELETE", "/a/{account_id:account}/devices/{device_id:uuid}", "delete-device"),
    ("GET", "/a/{account_id:account}/devices/policy", "get-default-policy"),
    ("PATCH", "/a/{account_id:account}/devices/policy", "patch-default-policy"),
    ("GET", "/a/{account_id:account}/devices/policy/{policy_id:uuid}", "get-policy"),
    ("GET", "/a/{account_id:account}/devices/policy/exclude", "get-exclude"),
    ("GET", "/a/{account_id:account}/devices/policy/{policy_id:uuid}/exclude", "policy-exclude"),
    ("GET", "/a/{account_id:account}/rules/{rule_id:str}", "get-rule"),
    ("POST", "/a/{account_id:account}/devices/revoke", "revoke"),
)


def _resolve(method: str, path: str) -> tuple[str, dict[str, str]]:
    operation, params = DEVICES.resolve(method, path)
    return operation.name, params


def test_literal_segment_wins_over_a_parameter() -> None:
    assert _resolve("GET", f"/a/{ACCOUNT}/devices/policy") == (
        "get-default-policy", {"account_id": ACCOUNT},
    )  # fmt: skip
    assert _resolve("GET", f"/a/{ACCOUNT}/devices/policy/exclude")[0] == "get-exclude"


def test_parameter_matches_when_no_literal_does() -> None:
    name, params = _resolve("GET", f"/a/{ACCOUNT}/devices/{UUID}")
    assert name == "get-device"
    assert params == {"account_id": ACCOUNT, "device_id": UUID}

    name, params = _resolve("GET", f"/a/{ACCOUNT}/devices/policy/{UUID}/exclude")
    assert name == "policy-exclude"
    assert params == {"account_id": ACCOUNT, "policy_id": UUID}


def test_literal_branch_falls_back_to_the_parameter() -> None:
    """`policy` is a literal, but `/policy/<uuid>` must still reach the parameter route."""
    assert _resolve("GET", f"/a/{ACCOUNT}/devices/policy/{UUID}")[0] == "get-policy"


def test_ids_are_normalised_to_lowercase() -> None:
    _, params = _resolve("GET", f"/a/{ACCOUNT.upper()}/devices/{UUID.upper()}")
    assert params == {"account_id": ACCOUNT, "device_id": UUID}


def test_str_parameter_keeps_its_text() -> None:
    assert _resolve("GET", f"/a/{ACCOUNT}/rules/Some-Rule") == (
        "get-rule", {"account_id": ACCOUNT, "rule_id": "Some-Rule"},
    )  # fmt: skip


def test_empty_segments_and_trailing_slashes_are_ignored() -> None:
    assert _resolve("GET", f"//a/{ACCOUNT}//devices/")[0] == "list-devices"


@pytest.mark.parametrize(
    "path",
    ["/a/not-an-account/devices", f"/a/{ACCOUNT}/devices/not-a-uuid",
     f"/a/{ACCOUNT[:-1]}/devices/{UUID}", f"/a/{ACCOUNT}/devices/policy/{UUID[:-1]}/exclude",
     f"/a/{UUID}/devices"],
)  # fmt: skip
def test_malformed_id_on_a_known_shape_is_7003(path: str) -> None:
    with pytest.raises(InvalidObjectIdentifier) as raised:
        DEVICES.resolve("GET", path)
    assert raised.value.status == 404 and raised.value.code == 7003
    assert raised.value.detail == (
        f"Could not route to {path}, perhaps your object identifier is invalid?"
    )


@pytest.mark.parametrize(
    "path",
    ["/", "/a", f"/a/{ACCOUNT}", f"/a/{ACCOUNT}/nothing", f"/a/{ACCOUNT}/devices/{UUID}/more",
     "/a/not-an-account/nothing", f"/a/{ACCOUNT}/devices/not-a-uuid/more", "/b/devices"],
)  # fmt: skip
def test_path_of_no_known_shape_is_7000(path: str) -> None:
    """A malformed id is only reported when the rest of the path fits a route."""
    with pytest.raises(NoRoute) as raised:
        DEVICES.resolve("GET", path)
    assert raised.value.status == 400 and raised.value.code == 7000


def test_missing_method_is_405_listing_the_allowed() -> None:
    with pytest.raises(MethodNotAllowed) as raised:
        DEVICES.resolve("PUT", f"/a/{ACCOUNT}/devices/{UUID}")
    assert raised.value.status == 405
    assert raised.value.headers == {"allow": "DELETE, GET"}

    with pytest.raises(MethodNotAllowed) as post_only:
        DEVICES.resolve("GET", f"/a/{ACCOUNT}/devices/revoke")
    assert post_only.value.headers == {"allow": "POST"}


def test_head_is_served_by_get() -> None:
    operation, params = DEVICES.resolve("HEAD", f"/a/{ACCOUNT}/devices/{UUID}")
    assert operation.name == "get-device" and operation.method == "GET"
    assert params["device_id"] == UUID


def test_head_without_get_is_405() -> None:
    with pytest.raises(MethodNotAllowed) as raised:
        DEVICES.resolve("HEAD", f"/a/{ACCOUNT}/devices/revoke")
    assert raised.value.headers == {"allow": "POST"}


def test_operations_list_every_route_in_order() -> None:
    assert [o.name for o in DEVICES.operations][:3] == ["list-devices", "get-device",
                                                        "delete-device"]  # fmt: skip
    assert len(DEVICES.operations) == 10
    assert all(o.implemented for o in DEVICES.operations)


def test_duplicate_route_is_refused() -> None:
    router = _router(("GET", "/x/{id:uuid}", "one"))
    with pytest.raises(ValueError, match="duplicate"):
        router.add("GET", "/x/{id:uuid}", "two", _handler("two"))


def test_conflicting_parameters_at_one_position_are_refused() -> None:
    router = _router(("GET", "/x/{id:uuid}", "one"))
    with pytest.raises(ValueError, match="conflicting"):
        router.add("GET", "/x/{other:uuid}/y", "two", _handler("two"))
    with pytest.raises(ValueError, match="conflicting"):
        router.add("GET", "/x/{id:str}/y", "three", _handler("three"))


def test_unknown_parameter_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown parameter type"):
        Router().add("GET", "/x/{id:int}", "one", _handler("one"))


async def test_resolved_handler_is_the_routes() -> None:
    operation, _ = DEVICES.resolve("GET", f"/a/{ACCOUNT}/devices/policy")
    response = await operation.handler(Request("GET", "/", "", {}))
    assert response.body == b"get-default-policy"
