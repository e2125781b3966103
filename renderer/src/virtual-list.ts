/**
 * A virtual list with fixed row height: only the rows in view (plus a small overscan) exist in the DOM,
 * and they are recycled while scrolling, so 10,000 or 100,000 rows scroll the same.
 *
 * A scroll frame does as little as it can: the scroll event (already aligned to the frame) reads scrollTop
 * once, and only rows that came into view are moved (transform) and refilled; the others are untouched.
 * The viewport is a composited scroller (see .vlist in styles.css) so scrolling does not repaint it.
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
  /** Which item index each pooled row shows (-1: hidden, -2: unknown, after the pool grew). */
  private filled: number[] = [];
  private items: readonly T[] = [];
  private frame = 0;
  private lastFirst = -1;
  private lastCount = -1;
  /** Read on resize only: reading it on every scroll could force a layout. */
  private height = 0;
  /** Items changed: rewrite every visible row once. */
  private dirty = true;
  /** performance.now() of the last scroll event, for callers that defer work while the user scrolls. */
  lastScrollAt = -Infinity;

  constructor(private readonly options: VirtualListOptions<T>) {
    this.element = document.createElement('div');
    this.element.className = 'vlist';
    this.element.setAttribute('role', 'rowgroup');
    this.spacer = document.createElement('div');
    this.spacer.className = 'vlist-spacer';
    this.element.append(this.spacer);
    this.element.addEventListener('scroll', () => {
      this.lastScrollAt = performance.now();
      this.render();
    }, { passive: true });
    new ResizeObserver((entries) => {
      this.height = entries[0]?.contentRect.height ?? 0;
      this.lastFirst = -1;
      this.schedule();
    }).observe(this.element);
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

  /** True while the user scrolled within the last `ms` milliseconds. */
  scrolledWithin(ms: number): boolean {
    return performance.now() - this.lastScrollAt < ms;
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
    const height = this.height || this.element.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.element.scrollTop / rowHeight) - overscan);
    const count = Math.max(0, Math.min(this.items.length - first, Math.ceil(height / rowHeight) + overscan * 2));
    if (first === this.lastFirst && count === this.lastCount && !this.dirty) return;
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
        row.hidden = true;
        this.pool.push(row);
        this.element.append(row);
      }
      this.filled = this.pool.map(() => -2);
    }
    // Each index always lands on the same pooled row (index mod pool size), so scrolling by a few rows
    // rewrites only the rows that came into view; the others keep their content and position.
    const size = this.pool.length;
    const end = first + count;
    for (let slot = 0; slot < size; slot++) {
      // The index in [first, end) that maps to this slot, if any.
      const index = first + ((slot - (first % size) + size) % size);
      const row = this.pool[slot]!;
      if (index >= end) {
        if (this.filled[slot] !== -1) {
          row.hidden = true;
          this.filled[slot] = -1;
        }
        continue;
      }
      if (this.filled[slot] === index && !this.dirty) continue;
      if (this.filled[slot] !== index) row.style.transform = `translateY(${index * rowHeight}px)`;
      if (this.filled[slot]! < 0) row.hidden = false;
      this.filled[slot] = index;
      this.options.renderRow(row, this.items[index]!, index);
    }
    this.dirty = false;
  }
}
