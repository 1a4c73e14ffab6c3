// Drives the official npm `cloudflare` SDK (pinned in package.json) against a running
// warp-registry, for tests/test_registrations_sdk.py. It only reports what the SDK saw, as
// one JSON object on stdout; the Python test decides what is right.
//
// Input: one JSON argument
//   {baseURL, apiToken, accountId, walks: [listParams, ...], revokeId?: string}
// Output:
//   {walks: [[id, ...], ...], revoke?: {revokeResult, afterRevoke, activeIds, revokedIds,
//                                        unrevokeResult, afterUnrevoke}}

import Cloudflare from 'cloudflare';

const config = JSON.parse(process.argv[2]);
const client = new Cloudflare({
  apiToken: config.apiToken,
  baseURL: config.baseURL,
  maxRetries: 0,
});
const registrations = client.zeroTrust.devices.registrations;
const account = { account_id: config.accountId };

// Auto-paging: the SDK follows result_info.cursor until it is empty.
async function walk(params) {
  const ids = [];
  for await (const registration of registrations.list({ ...account, ...params })) {
    ids.push(registration.id);
  }
  return ids;
}

const output = { walks: [] };
for (const params of config.walks) {
  output.walks.push(await walk(params));
}

if (config.revokeId) {
  const id = config.revokeId;
  const revokeResult = await registrations.revoke({ ...account, id: [id] });
  const afterRevoke = await registrations.get(id, account);
  const activeIds = await walk({ per_page: 1000 });
  const revokedIds = await walk({ status: 'revoked', per_page: 1000 });
  const unrevokeResult = await registrations.unrevoke({ ...account, id: [id] });
  const afterUnrevoke = await registrations.get(id, account);
  output.revoke = {
    revokeResult: revokeResult ?? null,
    afterRevoke,
    activeIds,
    revokedIds,
    unrevokeResult: unrevokeResult ?? null,
    afterUnrevoke,
  };
}

process.stdout.write(JSON.stringify(output));
