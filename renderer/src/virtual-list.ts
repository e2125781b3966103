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
    this.render();
  }

  /** Re-renders visible rows (e.g. after an item changed in place). */
  refresh(): void {
    this.lastFirst = -1;
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
    for (let i = 0; i < this.pool.length; i++) {
      const row = this.pool[i]!;
      if (i >= count) {
        row.hidden = true;
        continue;
      }
      const index = first + i;
      row.hidden = false;
      row.style.transform = `translateY(${index * rowHeight}px)`;
      this.options.renderRow(row, this.items[index]!, index);
    }
  }
}
