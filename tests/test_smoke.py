from cloudflare import AsyncCloudflare

from tests.conftest import Registry


async def test_sdk_reads_a_registration(sdk: AsyncCloudflare, registry: Registry) -> None:
    expected = registry.fleet.registrations[0]
    reg = await sdk.zero_trust.devices.registrations.get(
        expected.id, account_id=registry.account_id, include="policy"
    )
    assert reg.key == expected.key
    assert reg.policy is not None and reg.policy.id == expected.policy_id
