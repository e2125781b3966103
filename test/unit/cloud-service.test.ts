// The archive as an appliance service (cloud/cloud-service.ts): the reader follows the settings and signs in
// with forwarding's AuthProvider for the destination, and confirmed deliveries to the archive destination
// mark instances as held by it (at start for earlier deliveries, then as each delivery is confirmed).
import { indexDb } from '../support/index-db.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { CloudService } from '../../main/core/cloud/cloud-service.js';
import type { AuthProvider } from '../../main/core/forward/auth.js';
import { settingsSchema, type DestinationSettings, type Settings } from '../../main/core/contract/settings.js';
import { Archive } from '../../main/core/store/archive.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { makeStudy } from '../support/study.js';

const silent = pino({ level: 'silent' });

describe('the cloud service', () => {
  let dir: string;
  let archive: Archive;
  let azure: AzureDicomDouble;
  let settings: Settings;
  let service: CloudService;
  const asked: string[] = [];
  const providers = new Map<string, AuthProvider>();
  const authFor = (destination: DestinationSettings) => {
    let provider = providers.get(destination.name);
    if (!provider) {
      provider = { authorization: async () => { asked.push(destination.name); return undefined; } };
      providers.set(destination.name, provider);
    }
    return provider;
  };
  const study = makeStudy({ series: 1, instancesPerSeries: 3, rows: 8, columns: 8 });
  const inCloud = (uid: string) => (indexDb(archive).prepare('SELECT in_cloud FROM instances WHERE sop_instance_uid = ?').get(uid) as { in_cloud: number }).in_cloud;
  const withDestinations = (destinations: unknown[]) => settingsSchema.parse({ destinations });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-cloud-service-'));
    ({ archive } = await Archive.open({ dataDir: dir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger: silent, route: () => ['azure', 'other'] }));
    for (const instance of study) await archive.ingest(Readable.from([instance.buffer]), { callingAe: 'MODALITY', peer: 'test' });
    azure = await AzureDicomDouble.start();
    settings = withDestinations([{ name: 'other', baseUrl: 'http://127.0.0.1:9/v2' }, { name: 'azure', baseUrl: azure.baseUrl, archive: true }]);
    service = new CloudService({ archive, logger: silent, settings: () => settings, authFor });
  });
  after(async () => {
    await service?.stop();
    await archive?.close();
    await azure?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('at start, instances already delivered to the archive destination are marked as held by it; others are not', async () => {
    const [first, second, third] = study.map((i) => i.sopInstanceUid) as [string, string, string];
    indexDb(archive).prepare("UPDATE outbox SET state = 'delivered' WHERE sop_instance_uid = ? AND destination = 'azure'").run(first);
    indexDb(archive).prepare("UPDATE outbox SET state = 'delivered' WHERE sop_instance_uid = ? AND destination = 'other'").run(second);
    const lines = await service.start();
    assert.match(lines.join('\n'), /archive .*azure/);
    assert.deepEqual([inCloud(first), inCloud(second), inCloud(third)], [1, 0, 0]);

    // A confirmed delivery to the archive destination marks it; one to another destination does not.
    archive.events.emit('outbox-changed', { studyUid: study[0]!.studyUid, destination: 'other', sopInstanceUids: [third], state: 'delivered' });
    assert.equal(inCloud(third), 0);
    archive.events.emit('outbox-changed', { studyUid: study[0]!.studyUid, destination: 'azure', sopInstanceUids: [third], state: 'sending' });
    assert.equal(inCloud(third), 0);
    archive.events.emit('outbox-changed', { studyUid: study[0]!.studyUid, destination: 'azure', sopInstanceUids: [second, third], state: 'delivered' });
    assert.deepEqual([inCloud(second), inCloud(third)], [1, 1]);
  });

  test('the reader signs in with forwarding\'s provider for the archive destination, asked at each request', async () => {
    const reader = service.reader();
    assert.ok(reader);
    assert.equal(reader.name, 'azure');
    await reader.search({ level: 'study' });
    await reader.search({ level: 'study' });
    assert.deepEqual(asked, ['azure', 'azure']);
    // Forwarding rebuilt its providers (destinations changed): the reader uses the new one.
    providers.clear();
    await reader.search({ level: 'study' });
    assert.equal(providers.has('azure'), true);
  });

  test('the reader follows the settings: rebuilt when the archive destination changes, gone when there is none or it is disabled', async () => {
    const first = service.reader();
    await service.applySettings(settings);
    assert.equal(service.reader(), first, 'unchanged settings keep the reader');
    settings = withDestinations([{ name: 'azure', baseUrl: azure.partitionUrl('p1'), archive: true }]);
    await service.applySettings(settings);
    assert.notEqual(service.reader(), first);
    assert.equal(service.reader()?.baseUrl, azure.partitionUrl('p1'));
    settings = withDestinations([{ name: 'azure', baseUrl: azure.baseUrl, archive: true, enabled: false }]);
    await service.applySettings(settings);
    assert.equal(service.reader(), undefined);
    settings = withDestinations([{ name: 'azure', baseUrl: azure.baseUrl }]);
    await service.applySettings(settings);
    assert.equal(service.reader(), undefined);
    assert.equal(service.readThrough.needsArchive({ studyUid: '1.2.826.0.1.42' }), false, 'no archive: nothing to ask');
  });
});
