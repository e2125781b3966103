/**
 * One spelling of a person name (PN) for the index and for matching keys alike. PS3.5 6.2.1.1 lets trailing
 * component delimiters ('^') be left out, and a group delimiter ('=') stands only before a group that
 * follows; senders write 'Doe^John=', 'Doe^John^^^' or 'Doe^John' for the same name. Without one form, an
 * exact query with the name a C-FIND returned could miss the instance it came from.
 */
export function canonicalPersonName(value: string): string {
  const groups = value.split('=').map((group) => group.replace(/\^+$/, ''));
  while (groups.length > 1 && groups.at(-1) === '') groups.pop();
  return groups.join('=');
}
