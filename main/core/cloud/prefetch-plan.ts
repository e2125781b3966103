/**
 * Which of a patient's studies the prefetch rules want at hand (settings: cloud.prefetch.rules). Pure.
 *
 * A rule names the priors a reader wants next to a new study: the `maxStudies` most recent studies of the
 * patient with one of its `modalities` (any, when empty), no older than `maxAgeDays`. The new study itself
 * is not one of them. Priors already complete here count among them but need no fetch, so a rule never
 * reaches further back because recent priors are local. Studies without a valid StudyDate cannot be aged
 * and are left out. Several rules: the union of their choices.
 */
import type { PrefetchRule } from '../contract/settings.js';
import type { PatientStudy } from '../store/prefetch-jobs.js';
import { daysBefore, dicomDate } from './sync-position.js';

const DICOM_DATE = /^\d{8}$/;

/** The studies to fetch, most recent first. */
export function choosePriors(rules: readonly PrefetchRule[], studies: readonly PatientStudy[], options: { exclude: ReadonlySet<string>; today: Date }): string[] {
  const today = dicomDate(options.today);
  const newestFirst = studies
    .filter((s) => !options.exclude.has(s.studyUid) && DICOM_DATE.test(s.studyDate))
    .sort((a, b) => b.studyDate.localeCompare(a.studyDate) || b.studyTime.localeCompare(a.studyTime) || a.studyUid.localeCompare(b.studyUid));
  const wanted = new Set<string>();
  for (const rule of rules) {
    const oldest = daysBefore(today, rule.maxAgeDays);
    const modalities = new Set(rule.modalities.map((m) => m.toUpperCase()));
    newestFirst
      .filter((s) => s.studyDate >= oldest && (modalities.size === 0 || s.modalities.some((m) => modalities.has(m.toUpperCase()))))
      .slice(0, rule.maxStudies)
      .forEach((s) => wanted.add(s.studyUid));
  }
  return newestFirst.filter((s) => wanted.has(s.studyUid) && !s.complete).map((s) => s.studyUid);
}
