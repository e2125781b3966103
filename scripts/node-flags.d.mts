/** The Node flags the appliance runs with as a server (scripts/node-flags.mjs). */
export const APPLIANCE_NODE_FLAGS: readonly string[];
