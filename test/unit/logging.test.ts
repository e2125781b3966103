// The logger on a destination that fails with ENOSPC: /dev/full (the kernel answers every write with
// ENOSPC) under a real SonicBoom, and a destination that fails and then recovers.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import pino from 'pino';
import { GuardedLogStream, type DroppedLines } from '../../main/core/guarded-log-stream.js';
import { createLogger } from '../../main/core/logging.js';

/** Behaves like SonicBoom: queues lines, writes them asynchronously, 'error' on a failed write (keeping the lines), 'drain' when all are out. */
class DiskLikeDestination extends EventEmitter {
  full = true;
  destroyed = false;
  readonly lines: string[] = [];
  private queued: string[] = [];
  private writing = false;

  write(line: string): boolean {
    this.queued.push(line);
    if (!this.writing) this.flush();
    return true;
  }

  private flush(): void {
    this.writing = true;
    setImmediate(() => {
      this.writing = false;
      if (this.full) {
        this.emit('error', Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' }));
        return;
      }
      this.lines.push(...this.queued.splice(0));
      this.emit('drain');
    });
  }

  end(): void {
    this.destroy();
  }

  destroy(): void {
    this.destroyed = true;
    setImmediate(() => this.emit('close'));
  }
}

describe('logging on a full disk', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-logging-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  test('a log file that fails every write with ENOSPC (/dev/full) drops lines, says so once, and close still resolves', { timeout: 30_000 }, async () => {
    const warnings: string[] = [];
    let firstWarning!: () => void;
    const warned = new Promise<void>((resolve) => (firstWarning = resolve));
    const file = pino.destination({ dest: '/dev/full', sync: false });
    await new Promise((resolve) => file.once('ready', resolve));
    const log = await createLogger({
      dataDir: dir, level: 'info', stdout: false, file, warn: (message) => { warnings.push(message); firstWarning(); },
    });
    // A SonicBoom whose writes fail keeps the process alive until it is closed, so close it whatever happens.
    try {
      // An 'error' event nobody handles would end this test process here.
      for (let i = 0; i < 200; i++) {
        log.logger.info({ event: 'test-line', i }, 'a line the disk cannot take');
        if (i % 20 === 0) await nextTurn();
      }
      // The failed write comes back from the thread pool whenever it is done, not within a set number of turns.
      await warned;
      for (let i = 0; i < 50; i++) log.logger.info({ event: 'test-line', i }, 'another line the disk cannot take');
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(warnings.length, 1, `said once, not per line: ${JSON.stringify(warnings)}`);
      assert.match(warnings[0]!, /cannot write to the log file .*ENOSPC/);
      assert.match(warnings[0]!, /dropped until writing works again/);
    } finally {
      await log.close();
    }
  });

  test('lines are dropped while writes fail, a retry goes out once the interval passes, and the log then says how many were lost', async () => {
    const target = new DiskLikeDestination();
    let now = 1_000_000;
    const warnings: string[] = [];
    const reports: DroppedLines[] = [];
    const guard = new GuardedLogStream(target, {
      name: 'log file', retryMs: 5_000, now: () => now, warn: (message) => warnings.push(message), recovered: (lost) => reports.push(lost),
    });
    const logger = pino({ base: undefined }, guard);

    logger.info('first, fails');
    await nextTurn();
    assert.ok(guard.failing, 'the failed write is noticed');
    for (let i = 0; i < 7; i++) logger.info(`dropped ${i}`);
    now += 4_999;
    logger.info('dropped too: the retry interval has not passed');
    await nextTurn();
    assert.equal(warnings.length, 1);
    assert.deepEqual(reports, []);

    now += 1;
    logger.info('a retry, still failing');
    await nextTurn();
    assert.ok(guard.failing);
    assert.equal(warnings.length, 1, 'a failing retry says nothing more');

    target.full = false;
    now += 5_000;
    logger.info('a retry that works');
    await nextTurn();
    assert.ok(!guard.failing, 'writing resumed');
    assert.deepEqual(reports, [{ destination: 'log file', dropped: 8, reason: 'ENOSPC', since: new Date(1_000_000).toISOString() }]);
    // The lines SonicBoom held on to are written; the dropped ones are not.
    const messages = target.lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
    assert.deepEqual(messages, ['first, fails', 'a retry, still failing', 'a retry that works']);

    logger.info('normal again');
    await nextTurn();
    assert.equal(target.lines.length, 4);
    await guard.close();
    assert.ok(target.destroyed);
  });

  test('the logger writes the count of dropped lines into the log once writing works again', async () => {
    const target = new DiskLikeDestination();
    const log = await createLogger({ dataDir: dir, level: 'info', stdout: false, file: target, warn: () => undefined });
    log.logger.info({ event: 'lost' }, 'fails');
    await nextTurn();
    for (let i = 0; i < 5; i++) log.logger.info({ event: 'lost' }, 'dropped');
    target.full = false;
    // The default retry interval is one second; wait for it by polling rather than by a fixed sleep.
    const deadline = Date.now() + 10_000;
    while (!target.lines.some((line) => line.includes('"event":"log-lines-dropped"'))) {
      assert.ok(Date.now() < deadline, `no log-lines-dropped line; lines: ${target.lines.join('')}`);
      log.logger.info({ event: 'probe' }, 'probe');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const note = JSON.parse(target.lines.find((line) => line.includes('"event":"log-lines-dropped"'))!) as Record<string, unknown>;
    assert.equal(note.level, 40);
    assert.equal(note.destination, 'log file');
    assert.equal(note.reason, 'ENOSPC');
    assert.ok((note.dropped as number) >= 5, `counted the dropped lines: ${note.dropped}`);
    await log.close();
  });
});
