// Drives Tern's FHIR REST API with fhir-kit-client (a real FHIR client):
//   node api.mjs BASE_URL BUNDLE_DIR
// BUNDLE_DIR holds transaction Bundles made by `tern convert` (one JSON per
// line in *.ndjson). Prints "ok ..." / "FAIL ..." lines; exits 1 on any FAIL.
import Client from 'fhir-kit-client';
import { readFileSync, readdirSync } from 'node:fs';

const [base, bundleDir] = process.argv.slice(2);
const client = new Client({ baseUrl: base });
let failed = 0;
const ok = (m) => console.log(`ok   ${m}`);
const bad = (m) => { console.log(`FAIL ${m}`); failed = 1; };
const check = (cond, m) => (cond ? ok(m) : bad(m));
const hdr = (res, name) => res.__response && res.__response.headers.get(name);
// The HTTP status of a call that must fail, or 0 when it succeeded.
async function statusOf(p) {
  try { await p; return 0; } catch (e) { return e.response ? e.response.status : -1; }
}

async function crud() {
  const cap = await client.capabilityStatement();
  check(cap.resourceType === 'CapabilityStatement' && cap.fhirVersion === '4.0.1',
        'metadata is a CapabilityStatement for 4.0.1');
  const pat = { resourceType: 'Patient', identifier: [{ system: 'urn:test:mrn', value: 'K-1' }],
                name: [{ family: 'Kühn', given: ['Zoë'] }], gender: 'female', birthDate: '1975-06-14' };
  const created = await client.create({ resourceType: 'Patient', body: pat });
  check(created.id && created.meta.versionId === '1', `create -> id ${created.id}, version 1`);
  check(hdr(created, 'etag') === 'W/"1"', 'create answers ETag W/"1"');
  check((hdr(created, 'location') || '').includes(`/Patient/${created.id}/_history/1`), 'Location header');
  const read = await client.read({ resourceType: 'Patient', id: created.id });
  check(read.name[0].family === 'Kühn' && read.meta.lastUpdated, 'read returns the stored resource');

  read.gender = 'other';
  const upd = await client.update({ resourceType: 'Patient', id: created.id, body: read,
                                    options: { headers: { 'If-Match': 'W/"1"' } } });
  check(upd.meta.versionId === '2', 'update with If-Match W/"1" -> version 2');
  check(await statusOf(client.update({ resourceType: 'Patient', id: created.id, body: read,
                                       options: { headers: { 'If-Match': 'W/"1"' } } })) === 412,
        'update with a stale If-Match -> 412');
  const v1 = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
  check(v1.gender === 'female' && v1.meta.versionId === '1', 'vread _history/1 gives the first version');
  const hist = await client.history({ resourceType: 'Patient', id: created.id });
  check(hist.type === 'history' && hist.entry.length === 2 &&
        hist.entry[0].resource.meta.versionId === '2', 'history: 2 versions, newest first');

  // Create-on-update with a client id.
  const put = await client.update({ resourceType: 'Patient', id: 'client-chosen-1',
                                    body: { resourceType: 'Patient', id: 'client-chosen-1' } });
  check(put.id === 'client-chosen-1' && put.meta.versionId === '1', 'PUT creates Patient/client-chosen-1');

  // Conditional create: the second one finds the first.
  const cond = { resourceType: 'Patient', identifier: [{ system: 'urn:test:mrn', value: 'COND-1' }] };
  const h = { 'If-None-Exist': 'identifier=urn:test:mrn|COND-1' };
  const c1 = await client.create({ resourceType: 'Patient', body: cond, options: { headers: h } });
  const c2 = await client.create({ resourceType: 'Patient', body: cond, options: { headers: h } });
  check(c1.id === c2.id, 'If-None-Exist: the second create returns the existing resource');
  const s = await client.search({ resourceType: 'Patient', searchParams: { identifier: 'urn:test:mrn|COND-1' } });
  check(s.entry.length === 1, 'If-None-Exist: only one stored');

  await client.delete({ resourceType: 'Patient', id: c1.id });
  check(await statusOf(client.read({ resourceType: 'Patient', id: c1.id })) === 410, 'read after delete -> 410');
  check(await statusOf(client.read({ resourceType: 'Patient', id: 'never-was' })) === 404, 'read unknown id -> 404');
  const s2 = await client.search({ resourceType: 'Patient', searchParams: { identifier: 'urn:test:mrn|COND-1' } });
  check(!s2.entry || s2.entry.length === 0, 'a deleted resource is not found by search');
  return created.id;
}

async function searching(pid) {
  const byName = await client.search({ resourceType: 'Patient', searchParams: { family: 'kuhn', given: 'zo' } });
  check(byName.entry && byName.entry.length === 1 && byName.entry[0].resource.id === pid,
        'family=kuhn&given=zo finds Kühn, Zoë (accent-free prefix)');
  const byBirth = await client.search({ resourceType: 'Patient', searchParams: { birthdate: 'ge1975-06', gender: 'other' } });
  check(byBirth.entry && byBirth.entry.some((e) => e.resource.id === pid), 'birthdate=ge1975-06&gender=other');
  const none = await client.search({ resourceType: 'Patient', searchParams: { birthdate: 'lt1975' } });
  check(!none.entry || !none.entry.some((e) => e.resource.id === pid), 'birthdate=lt1975 excludes 1975-06-14');

  // 25 observations, pages of 10: 3 pages, 25 distinct ids, in order.
  const txEntries = [];
  for (let i = 0; i < 25; i++) {
    txEntries.push({ resource: { resourceType: 'Observation', status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: i % 2 ? '8867-4' : '8310-5' }] },
      subject: { reference: `Patient/${pid}` }, effectiveDateTime: `2026-01-${String(i + 1).padStart(2, '0')}T08:00:00Z` },
      request: { method: 'POST', url: 'Observation' } });
  }
  const tx = await client.transaction({ body: { resourceType: 'Bundle', type: 'transaction', entry: txEntries } });
  check(tx.type === 'transaction-response' && tx.entry.every((e) => e.response.status.startsWith('201')),
        'transaction of 25 Observations: all 201');
  let page = await client.search({ resourceType: 'Observation', searchParams: { patient: pid, _count: 10 } });
  const seen = new Set();
  let pages = 0;
  while (page) {
    pages++;
    (page.entry || []).forEach((e) => seen.add(e.resource.id));
    page = await client.nextPage({ bundle: page });
  }
  check(pages === 3 && seen.size === 25, `paging with next links: ${pages} pages, ${seen.size} distinct`);
  const hr = await client.search({ resourceType: 'Observation',
    searchParams: { subject: `Patient/${pid}`, code: 'http://loinc.org|8867-4', date: 'ge2026-01-10', _count: 100 } });
  check(hr.entry && hr.entry.length === 8, `code + date=ge2026-01-10: 8 (got ${hr.entry ? hr.entry.length : 0})`);
  const inc = await client.search({ resourceType: 'Observation',
    searchParams: { patient: pid, _count: 2, _include: 'Observation:subject' } });
  const modes = (inc.entry || []).map((e) => `${e.resource.resourceType}:${e.search.mode}`);
  check(modes.filter((m) => m === 'Patient:include').length === 1 &&
        modes.filter((m) => m === 'Observation:match').length === 2,
        `_include=Observation:subject: ${modes.join(' ')}`);
  const ev = await client.operation({ name: '$everything', resourceType: 'Patient', id: pid, method: 'get' });
  check(ev.entry && ev.entry.length === 26 && ev.entry[0].resource.resourceType === 'Patient',
        `Patient/$everything: patient + 25 observations (got ${ev.entry ? ev.entry.length : 0})`);
}

async function atomic() {
  const body = { resourceType: 'Bundle', type: 'transaction', entry: [
    { fullUrl: 'urn:uuid:11111111-1111-4111-8111-111111111111',
      resource: { resourceType: 'Patient', identifier: [{ system: 'urn:test:mrn', value: 'ATOMIC-1' }] },
      request: { method: 'POST', url: 'Patient' } },
    { resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' },
                  subject: { reference: 'urn:uuid:11111111-1111-4111-8111-111111111111' },
                  effectiveDateTime: '2026-99-99' },
      request: { method: 'POST', url: 'Observation' } }] };
  const st = await statusOf(client.transaction({ body }));
  check(st === 422, `transaction with one invalid entry -> 422 (got ${st})`);
  const s = await client.search({ resourceType: 'Patient', searchParams: { identifier: 'urn:test:mrn|ATOMIC-1' } });
  check(!s.entry || s.entry.length === 0, 'rolled back: the valid Patient of that transaction is not stored');

  body.entry[1].resource.effectiveDateTime = '2026-03-01';
  const good = await client.transaction({ body });
  const pLoc = good.entry[0].response.location.split('/');
  const obs = await client.read({ resourceType: 'Observation', id: good.entry[1].response.location.split('/')[1] });
  check(obs.subject.reference === `Patient/${pLoc[1]}`, `urn:uuid reference rewritten to ${obs.subject.reference}`);
  const again = await client.transaction({ body: { resourceType: 'Bundle', type: 'transaction', entry: [
    { resource: body.entry[0].resource, request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:test:mrn|ATOMIC-1' } }] } });
  check(again.entry[0].response.status.startsWith('200') &&
        again.entry[0].response.location.split('/')[1] === pLoc[1], 'transaction ifNoneExist finds the existing Patient');
  const batch = await client.batch({ body: { resourceType: 'Bundle', type: 'batch', entry: [
    { resource: { resourceType: 'Patient' }, request: { method: 'POST', url: 'Patient' } },
    { request: { method: 'GET', url: 'Patient/never-was' } }] } });
  check(batch.entry[0].response.status.startsWith('201') && batch.entry[1].response.status.startsWith('404'),
        'batch: entries succeed or fail on their own (201, 404)');
}

async function converted() {
  const files = readdirSync(bundleDir).filter((f) => f.endsWith('.ndjson'));
  let obsPatients = 0;
  for (const f of files) {
    for (const line of readFileSync(`${bundleDir}/${f}`, 'utf8').split('\n').filter(Boolean)) {
      const bundle = JSON.parse(line);
      const res = await client.transaction({ body: bundle });
      check(res.entry.length === bundle.entry.length, `${f}: transaction of ${bundle.entry.length} entries`);
      const obs = bundle.entry.filter((e) => e.resource.resourceType === 'Observation');
      if (!obs.length) continue;
      const pid = obs[0].resource.subject.reference.split('/')[1];
      const found = await client.search({ resourceType: 'Observation', searchParams: { patient: pid, _count: 1000 } });
      const ids = new Set((found.entry || []).map((e) => e.resource.id));
      check(obs.every((e) => ids.has(e.resource.id)), `${f}: its ${obs.length} Observations found by Observation?patient=${pid}`);
      obsPatients++;
    }
  }
  check(obsPatients > 0, `converted ORU Bundles searched: ${obsPatients}`);
}

try {
  const pid = await crud();
  await searching(pid);
  await atomic();
  await converted();
} catch (e) {
  bad(`unexpected error: ${e.response ? `${e.response.status} ${JSON.stringify(e.response.data)}` : e.stack}`);
}
process.exit(failed);
