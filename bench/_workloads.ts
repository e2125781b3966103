/** The two ingest workloads the issues name, shared by the store and ingest benchmarks. */
export interface Workload {
  name: string;
  count: number;
  rows: number;
  columns: number;
}

export const WORKLOADS: readonly Workload[] = [
  { name: 'CT 512x512x16', count: 500, rows: 512, columns: 512 },
  { name: 'small 32x32', count: 3000, rows: 32, columns: 32 },
];
