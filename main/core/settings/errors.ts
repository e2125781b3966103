export class SettingsError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(`invalid settings in ${file}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'SettingsError';
  }
}
