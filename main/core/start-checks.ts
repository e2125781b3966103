/**
 * Everything about settings that stops a start, in one place: the start asks it before anything is
 * opened, and PUT /api/settings asks it before writing, so a write can never leave settings behind that
 * the next start refuses.
 */
import { accessSync, constants } from 'node:fs';
import { describeIssues } from './contract/settings-problems.js';
import { SettingsError } from './settings/errors.js';
import { settingsSchema, type Settings } from './contract/settings.js';
import { readCaFile } from './network/trusted-cas.js';
import { BindRefusedError, checkBindPolicy } from './web/access.js';
import { configuredIdentity, HttpsIdentityError, needsHttps } from './web/https-identity.js';

/** Problems in the settings error format (`field "a.b" has value X: why`); [] when these settings can start. */
export function startProblems(settings: Settings): string[] {
  const parsed = settingsSchema.safeParse(settings);
  if (!parsed.success) return describeIssues(parsed.error, settings);
  const problems: string[] = [];
  const { http, dimse } = parsed.data;
  try {
    checkBindPolicy({ host: http.host, configuredToken: http.apiToken, sessionToken: '', basicAuth: http.basicAuth });
  } catch (error) {
    if (!(error instanceof BindRefusedError)) throw error;
    const shown = error.field === 'http.host' ? JSON.stringify(http.host) : '(hidden)';
    problems.push(`field "${error.field}" has value ${shown}: ${error.message}`);
  }
  if (dimse.tls.enabled) {
    // The DIMSE service reads these when it starts listening; an unreadable one stops the start.
    for (const key of ['certFile', 'keyFile', 'caFile'] as const) {
      const file = dimse.tls[key];
      if (!file) {
        if (key !== 'caFile') problems.push(`field "dimse.tls.${key}" has value "": is required when dimse.tls.enabled is true`);
        continue;
      }
      try {
        accessSync(file, constants.R_OK);
      } catch (error) {
        problems.push(`field "dimse.tls.${key}" has value ${JSON.stringify(file)}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
    }
  }
  if (needsHttps(http) && http.tls.certFile && http.tls.keyFile) {
    // The server reads them when it starts listening; a pair that cannot serve HTTPS stops the start.
    try {
      configuredIdentity(http.tls.certFile, http.tls.keyFile);
    } catch (error) {
      if (!(error instanceof HttpsIdentityError)) throw error;
      problems.push(`field "${error.field}" has value ${JSON.stringify(error.file)}: ${error.message}`);
    }
  }
  if (parsed.data.network.caFile) {
    // Read by every outgoing connection: a file that holds no usable certificate would fail them all later.
    try {
      readCaFile(parsed.data.network.caFile);
    } catch (error) {
      problems.push(`field "network.caFile" has value ${JSON.stringify(parsed.data.network.caFile)}: ${(error as Error).message}`);
    }
  }
  return problems;
}

/** Throws SettingsError naming every problem when these settings (flags applied) cannot start. */
export function assertStartable(settings: Settings, file: string): void {
  const problems = startProblems(settings);
  if (problems.length > 0) throw new SettingsError(file, problems);
}
