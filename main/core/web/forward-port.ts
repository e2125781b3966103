/**
 * web/ reaches store-and-forward only through forward/control.ts's ForwardControl (status and manual
 * actions); its events arrive through the archive's event stream.
 */
export { ForwardControlError, type ForwardControl, type OutboxFilter } from '../forward/control.js';
