// The Node flags the appliance runs with, wherever it is launched as a server: `npm start` without Electron,
// the server package's /usr/bin/dicom-edge, and the benchmarks that measure it as installed.
//
// A young generation of at most 4 MB per semi-space: V8's own sizing lets it grow to tens of MB, and a
// stream (a 2 GB cloud instance passed through, a study read) leaves each socket chunk's wrapper in it until
// the next scavenge, so the chunks' memory outside the heap waits as long. Measured on the 2 GB read-through
// (bench/profile/huge-rss.ts, compiled core): peak RSS 242 MB by default, 217 MB at 8, 180 MB at 4, 166 MB at 2.
export const APPLIANCE_NODE_FLAGS = ['--max-semi-space-size=4'];
