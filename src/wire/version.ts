// The package version, fixed at build time (scripts/build.mjs defines it);
// '0.0.0-dev' when the sources run unbuilt, as in the tests.
declare const QUIC_RELAY_VERSION: string | undefined;

export const VERSION: string = typeof QUIC_RELAY_VERSION === 'string' ? QUIC_RELAY_VERSION : '0.0.0-dev';
