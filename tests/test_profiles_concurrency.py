"""Concurrent profile writes: no lost field, no shared precedence, on both stores."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Registry
from tests.expect import assert_error_envelope


def _base(registry: Registry) -> str:
    return f"/accounts/{registry.account_id}/devices"


async def test_concurrent_edits_of_one_profile_keep_every_field(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    created = await api.post(
        f"{_base(registry)}/policy", json={"name": "Shared", "precedence": 900}
    )
    path = f"{_base(registry)}/policy/{created.json()['result']['policy_id']}"
    edits = [{"captive_portal": 10 + i} if i % 2 else {"support_url": f"https://help/{i}"}
             for i in range(8)]  # fmt: skip
    edits.append({"switch_locked": True})

    answers = await asyncio.gather(*(api.patch(path, json=edit) for edit in edits))

    assert [a.status_code for a in answers] == [200] * len(edits)
    final = (await api.get(path)).json()["result"]
    assert final["switch_locked"] is True
    assert final["captive_portal"] in {10 + i for i in range(1, 8, 2)}
    assert final["support_url"] in {f"https://help/{i}" for i in range(0, 8, 2)}


async def test_concurrent_creates_never_share_a_precedence(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    bodies = [{"name": f"Racer {i}", "precedence": 901} for i in range(6)]

    answers = await asyncio.gather(
        *(api.post(f"{_base(registry)}/policy", json=body) for body in bodies)
    )

    assert sorted(a.status_code for a in answers) == [200] + [400] * 5
    for answer in answers:
        if answer.status_code == 400:
            assert_error_envelope(answer.json(), 1104)
    listed = (await api.get(f"{_base(registry)}/policies")).json()["result"]
    assert [p["precedence"] for p in listed].count(901) == 1
