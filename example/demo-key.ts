/**
 * The webhook signing key the example uses with its embedded simulator when
 * CUSTOMERIO_WEBHOOK_SIGNING_KEY is not set. It is published here: a demo value, never a secret.
 */
export const DEMO_SIGNING_KEY = 'demo-signing-key-for-the-example-only'

/** The key to sign with: the first of CUSTOMERIO_WEBHOOK_SIGNING_KEY (comma-separated during a rotation), else the demo key. */
export function signingKeyFrom (env: { CUSTOMERIO_WEBHOOK_SIGNING_KEY?: string | undefined }): string {
  return env.CUSTOMERIO_WEBHOOK_SIGNING_KEY?.split(',')[0]?.trim() || DEMO_SIGNING_KEY
}
