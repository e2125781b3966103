// The rooms table of docs/architecture.md, checked by `npm run lint:deps` (and so by .ci/run).
// A rule's name is what a failing import prints; docs/architecture.md says what each rule protects.

const OURS = '^(main|preload|renderer)/';
const SERVICE_ROOMS = '^main/core/(dimse|web|forward)/';

/**
 * Imports allowed to break a rule, each one exact [rule, from, to] under one rule, so any other import
 * breaking the same rule still fails. Empty: keep it so. test/unit/architecture.test.ts fails on a
 * line that no longer matches anything.
 */
const KNOWN_VIOLATIONS = [];

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles, type-only ones included: two modules in a cycle are one module in two files.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'dicom-imports-nothing-of-ours',
      comment: 'main/core/dicom/ is DICOM knowledge with no I/O; every room may use it, so it uses no other room.',
      severity: 'error',
      from: { path: '^main/core/dicom/' },
      to: { path: OURS, pathNot: '^main/core/dicom/' },
    },
    {
      name: 'multipart-imports-nothing-of-ours',
      comment:
        'main/core/multipart/ is HTTP framing (media types, the multipart/related reader and writer) under web/, ' +
        'forward/ and any other room that speaks DICOMweb; it knows no DICOM and no other room.',
      severity: 'error',
      from: { path: '^main/core/multipart/' },
      to: { path: OURS, pathNot: '^main/core/multipart/' },
    },
    {
      name: 'network-imports-only-contract',
      comment:
        'main/core/network/ (proxy choice, trusted CAs, the dispatchers and agents built from them) sits under ' +
        'forward/ and cloud/, which take every outgoing connection from it; it reads only the settings contract.',
      severity: 'error',
      from: { path: '^main/core/network/' },
      to: { path: OURS, pathNot: '^main/core/(network|contract)/' },
    },
    {
      name: 'settings-imports-only-dicom',
      comment: 'main/core/settings/ (schema and file) builds on dicom/ alone, so every room can read settings.',
      severity: 'error',
      from: { path: '^main/core/settings/' },
      to: { path: OURS, pathNot: '^main/core/(settings|dicom|contract)/' },
    },
    {
      name: 'runtime-imports-nothing-of-ours',
      comment:
        'main/core/runtime/ is how the process runs (a worker thread started beside its module, from source, build ' +
        'or desktop bundle; waiting out a stream\'s backpressure); every room may use it, so it uses no other room.',
      severity: 'error',
      from: { path: '^main/core/runtime/' },
      to: { path: OURS, pathNot: '^main/core/runtime/' },
    },
    {
      name: 'store-imports-only-lower-rooms',
      comment: 'main/core/store/ (archive, index, outbox) sits under every service; it imports only dicom/, the wire contract and runtime/.',
      severity: 'error',
      from: { path: '^main/core/store/' },
      to: { path: OURS, pathNot: '^main/core/(store|dicom|contract|runtime)/' },
    },
    {
      name: 'services-do-not-import-each-other',
      comment:
        'dimse/, web/ and forward/ meet only in appliance.ts. The one door: web/forward-port.ts, which ' +
        'passes on forward/control.ts (rule web-reaches-forward-only-through-control).',
      severity: 'error',
      from: { path: SERVICE_ROOMS, pathNot: '^main/core/web/forward-port\\.ts$' },
      to: { path: SERVICE_ROOMS, pathNot: '^main/core/$1/' },
    },
    {
      name: 'web-reaches-forward-only-through-control',
      comment: "web/forward-port.ts is web/'s single door to forward/, and it opens onto forward/control.ts alone.",
      severity: 'error',
      from: { path: '^main/core/web/forward-port\\.ts$' },
      to: { path: SERVICE_ROOMS, pathNot: '^main/core/(web/|forward/control\\.ts$)' },
    },
    {
      name: 'image-work-runs-in-the-workers',
      comment:
        'Decoding, rendering and conversion (web/image-render.ts, web/explicit-le-convert.ts) block for milliseconds: ' +
        'only the worker thread entry web/image-worker.ts runs them; the routes go through web/image-pool.ts.',
      severity: 'error',
      from: { path: '^main/', pathNot: '^main/core/web/image-worker\\.ts$' },
      to: { path: '^main/core/web/(image-render|explicit-le-convert)\\.ts$', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'cloud-imports-only-lower-rooms',
      comment:
        "main/core/cloud/ (reading from the archive destination) sits under web/ and dimse/: it builds on store/, " +
        "settings/, dicom/, multipart/, network/ and runtime/, and signs in with forward/'s auth providers and HTTP client (auth.ts, stow-client.ts).",
      severity: 'error',
      from: { path: '^main/core/cloud/' },
      to: { path: OURS, pathNot: '^main/core/(cloud|store|settings|dicom|contract|multipart|network|runtime)/|^main/core/service\\.ts$|^main/core/forward/(auth|stow-client)\\.ts$' },
    },
    {
      name: 'forward-does-not-import-cloud',
      comment: 'cloud/ uses forward/\'s auth; the composition root hands forwarding\'s AuthProviders to cloud/, never the other way.',
      severity: 'error',
      from: { path: '^main/core/forward/' },
      to: { path: '^main/core/cloud/' },
    },
    {
      name: 'rooms-do-not-import-the-composition-root',
      comment: 'appliance.ts and cli.ts build the rooms; a room that imports them imports every other room.',
      severity: 'error',
      from: { path: '^main/core/[^/]+/' },
      to: { path: '^main/core/(appliance|cli)\\.ts$' },
    },
    {
      name: 'core-does-not-import-the-shell',
      comment: 'main/core/ is the appliance as plain Node; the shell, the preload and the page sit on top of it.',
      severity: 'error',
      from: { path: '^main/core/' },
      to: { path: '^(main/electron|preload|renderer)/' },
    },
    {
      name: 'renderer-imports-only-contract-and-preload-types',
      comment: 'The renderer talks to the appliance over HTTP only, so the same page works in any browser.',
      severity: 'error',
      from: { path: '^renderer/' },
      to: { path: '^(main|preload)/', pathNot: '^(main/core/contract/|preload/api-types\\.ts$)' },
    },
    {
      name: 'renderer-has-no-node-builtins',
      comment: 'renderer/src/ runs in a sandboxed page without Node.',
      severity: 'error',
      from: { path: '^renderer/src/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'contract-runs-in-the-browser',
      comment: 'main/core/contract/ is imported by the renderer too: no Node built-ins, no native modules.',
      severity: 'error',
      from: { path: '^main/core/contract/' },
      to: { dependencyTypes: ['core'] },
    },
    {
      name: 'contract-takes-from-dicom-only-pure-models',
      comment:
        'What the contract imports goes into the page. Of our code it imports only itself, dicom/json-model.ts ' +
        "(types) and dicom/uid.ts (UID rules), which import nothing, so dicom/'s dcmjs dictionary and Node modules stay out of the page.",
      severity: 'error',
      from: { path: '^main/core/contract/' },
      to: { path: OURS, pathNot: '^main/core/(contract/|dicom/(json-model|uid)\\.ts$)' },
    },
    {
      name: 'dicom-json-model-imports-nothing',
      comment: 'dicom/json-model.ts reaches the page through the contract, so it stays a file of types alone.',
      severity: 'error',
      from: { path: '^main/core/dicom/json-model\\.ts$' },
      to: {},
    },
    {
      name: 'electron-imports-only-appliance-and-contract',
      comment:
        'The desktop shell drives the appliance through appliance.ts, and speaks to its preload through ' +
        'preload/api-types.ts (the IPC contract).',
      severity: 'error',
      from: { path: '^main/electron/' },
      to: { path: '^(main/core|preload|renderer)/', pathNot: '^(main/core/appliance\\.ts$|main/core/contract/|preload/api-types\\.ts$)' },
    },
    {
      name: 'better-sqlite3-only-in-store',
      comment: 'SQL lives in main/core/store/; the rooms above it call its named queries. Tests may open the index to look.',
      severity: 'error',
      from: { path: '^(main|preload|renderer|bench)/', pathNot: '^main/core/store/' },
      to: { path: '(^|/)node_modules/(@types/)?better-sqlite3/' },
    },
    {
      name: 'db-handle-only-in-store',
      comment: "store/database.ts hands out the index's connection (the Db type); outside store/ that is SQL by another door.",
      severity: 'error',
      from: { path: '^(main|preload|renderer|bench)/', pathNot: '^main/core/store/' },
      to: { path: '^main/core/store/database\\.ts$' },
    },
    {
      name: 'electron-only-in-shell-and-preload',
      comment: 'main/core/ runs headless under plain Node; only main/electron/ and preload/ may load electron.',
      severity: 'error',
      from: { pathNot: '^(main/electron|preload)/' },
      to: { path: '(^|/)node_modules/electron/' },
    },
    {
      name: 'main-does-not-need-dev-dependencies',
      comment: 'The packaged app carries only "dependencies" (electron itself is provided by the runtime).',
      severity: 'error',
      from: { path: '^main/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'], pathNot: '(^|/)node_modules/electron/' },
    },
    {
      name: 'packages-are-declared',
      comment:
        'A package we import is declared in package.json, so an update of something else cannot remove it. ' +
        "(The packaging test loads electron-builder's own YAML reader and schema validator on purpose.)",
      severity: 'error',
      from: { pathNot: '^test/unit/electron-packaging\\.test\\.ts$' },
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'imports-resolve',
      comment: 'An import that resolves to nothing is a typo or a missing file. (?url is a vite asset import.)',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true, pathNot: '\\?url$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a type-only cycle is still a cycle, and a type is still a dependency on its room.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    knownViolations: KNOWN_VIOLATIONS.map(([rule, from, to]) => ({ type: 'dependency', from, to, rule: { name: rule, severity: 'error' } })),
    reporterOptions: { text: { highlightFocused: true } },
  },
};
