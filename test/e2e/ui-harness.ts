// The desktop UI in a real Chromium against a real headless appliance: shared by the e2e tests and bench/ui.ts.
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { requireFile, requireTool, runOk } from '../support/peers.js';
import { writeInstances, type GeneratedInstance } from '../support/study.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

export const ARTIFACTS = join(process.cwd(), 'test-artifacts');
const CHROMIUM = '/usr/bin/chromium';

/** Builds the renderer into dist/renderer, where the web server serves it from. */
export function buildRenderer(): void {
  const result = spawnSync(process.execPath, ['node_modules/vite/bin/vite.js', 'build', '--config', 'renderer/vite.config.ts'], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`renderer build failed:\n${result.stdout}\n${result.stderr}`);
}

export async function launchChromium(): Promise<Browser> {
  requireFile(CHROMIUM, 'chromium');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

export interface UiSession {
  appliance: WebAppliance;
  browser: Browser;
  page: Page;
  /** Console errors and CSP violations seen by the page. */
  pageErrors: string[];
  stop(): Promise<void>;
}

/** A headless appliance and a Chromium page logged in through the token URL (which sets the session cookie). */
export async function startUiSession(options: { viewport?: { width: number; height: number }; appliance?: Parameters<typeof startWebAppliance>[0] } = {}): Promise<UiSession> {
  const appliance = await startWebAppliance(options.appliance);
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: options.viewport ?? { width: 1440, height: 900 } });
    // tsx (esbuild keepNames) wraps named functions inside page.evaluate callbacks in __name(): give the page one.
    await page.addInitScript({ content: 'globalThis.__name = (fn) => fn;' });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(`pageerror: ${error.message}`));
    page.on('crash', () => pageErrors.push('the page crashed'));
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(`console: ${message.text()}`);
    });
    await page.goto(`${appliance.baseUrl}/?token=${encodeURIComponent(appliance.token)}`);
    await page.waitForSelector('.sidebar');
    const session: UiSession = {
      appliance, browser, page, pageErrors,
      stop: async () => {
        await browser?.close();
        await appliance.stop();
      },
    };
    return session;
  } catch (error) {
    await browser?.close();
    await appliance.stop();
    throw error;
  }
}

/** Sends the instances to the appliance with DCMTK storescu, as a modality would. */
export async function storescu(appliance: WebAppliance, instances: readonly GeneratedInstance[], callingAe = 'MODALITY'): Promise<void> {
  const storescuPath = requireTool('storescu', 'dcmtk');
  const dir = await mkdtemp(join(tmpdir(), 'ui-send-'));
  try {
    const files = await writeInstances(dir, instances);
    await runOk(storescuPath, ['-aet', callingAe, '-aec', 'DICOMEDGE', '127.0.0.1', String(appliance.dimsePort), ...files], { timeoutMs: 120_000 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** Statistics of the viewer's canvas: how many pixels are not black, and a checksum of the pixels. */
export function canvasStats(page: Page): Promise<{ nonBlack: number; total: number; sum: number }> {
  return page.evaluate(async () => {
    // cornerstone draws on the next animation frame after displayImage: let it.
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    const canvas = document.querySelector<HTMLCanvasElement>('.viewport canvas');
    if (!canvas || canvas.width === 0) return { nonBlack: 0, total: 0, sum: 0 };
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let nonBlack = 0;
    let sum = 0;
    for (let i = 0; i < data.length; i += 4) {
      const v = data[i]! + data[i + 1]! + data[i + 2]!;
      if (v > 24) nonBlack++;
      sum = (sum + v * ((i >> 2) % 251 + 1)) % 2_147_483_647;
    }
    return { nonBlack, total: data.length / 4, sum };
  });
}
