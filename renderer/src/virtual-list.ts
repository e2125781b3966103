/**
 * A virtual list with fixed row height: only the rows in view (plus a small overscan) exist in the DOM,
 * and they are recycled while scrolling, so 10,000 or 100,000 rows scroll the same.
 */
export interface VirtualListOptions<T> {
  rowHeight: number;
  overscan?: number;
  /** Creates an empty row element (called once per pooled row). */
  createRow: () => HTMLElement;
  /** Fills a pooled row with an item. */
  renderRow: (row: HTMLElement, item: T, index: number) => void;
}

export class VirtualList<T> {
  readonly element: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly pool: HTMLElement[] = [];
  private items: readonly T[] = [];
  private frame = 0;
  private lastFirst = -1;
  private lastCount = -1;
  /** Which item index each pooled row shows. */
  private readonly filled = new Map<number, number>();
  /** Items changed: rewrite every visible row once. */
  private dirty = true;

  constructor(private readonly options: VirtualListOptions<T>) {
    this.element = document.createElement('div');
    this.element.className = 'vlist';
    this.element.setAttribute('role', 'rowgroup');
    this.spacer = document.createElement('div');
    this.spacer.className = 'vlist-spacer';
    this.element.append(this.spacer);
    this.element.addEventListener('scroll', () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(this.element);
  }

  setItems(items: readonly T[]): void {
    this.items = items;
    this.spacer.style.height = `${items.length * this.options.rowHeight}px`;
    this.lastFirst = -1;
    this.dirty = true;
    this.render();
  }

  /** Re-renders visible rows (e.g. after an item changed in place). */
  refresh(): void {
    this.lastFirst = -1;
    this.dirty = true;
    this.schedule();
  }

  get length(): number {
    return this.items.length;
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  private render(): void {
    const { rowHeight } = this.options;
    const overscan = this.options.overscan ?? 6;
    const height = this.element.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.element.scrollTop / rowHeight) - overscan);
    const count = Math.min(this.items.length - first, Math.ceil(height / rowHeight) + overscan * 2);
    if (first === this.lastFirst && count === this.lastCount) return;
    this.lastFirst = first;
    this.lastCount = count;
    if (this.pool.length < count) {
      while (this.pool.length < count) {
        const row = this.options.createRow();
        row.style.position = 'absolute';
        row.style.top = '0';
        row.style.left = '0';
        row.style.right = '0';
        row.style.height = `${rowHeight}px`;
        this.pool.push(row);
        this.element.append(row);
      }
      this.filled.clear();
    }
    // Each index always lands on the same pooled row (index mod pool size), so scrolling by a few rows
    // rewrites only the rows that came into view; the others keep their content and position.
    const size = this.pool.length;
    const used = new Set<number>();
    for (let index = first; index < first + count; index++) {
      const slot = index % size;
      used.add(slot);
      const row = this.pool[slot]!;
      row.hidden = false;
      if (this.filled.get(slot) === index && !this.dirty) continue;
      this.filled.set(slot, index);
      row.style.transform = `translateY(${index * rowHeight}px)`;
      this.options.renderRow(row, this.items[index]!, index);
    }
    for (let slot = 0; slot < size; slot++) {
      if (!used.has(slot)) {
        this.pool[slot]!.hidden = true;
        this.filled.delete(slot);
      }
    }
    this.dirty = false;
  }
}
